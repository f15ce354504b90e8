import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { BenchAgent } from "./agent.js";
import { exitOf, run, spawnTracked } from "./system.js";

export type TargetId = "local" | "nbdkit-file" | "nbdkit-memory" | "holdfast";

export const TARGET_TITLES: Record<TargetId, string> = {
  local: "local file",
  "nbdkit-file": "nbdkit file",
  "nbdkit-memory": "nbdkit memory",
  holdfast: "Holdfast",
};

/** Something fio runs jobs against, set up and torn down by the bench. */
export interface Target {
  id: TargetId;
  /** fio's engine arguments (engine, file or URI). */
  engineArgs: string[];
  /** The serving process, whose CPU is measured; none for the local file. */
  pid?: number;
  /** Throws if the server died or reported a failure during the last job. */
  check(): void;
  stop(): Promise<void>;
}

const VOLUME = "bench";
/** Sized as the nbdkit targets, and larger than the fio region. */
const VOLUME_SIZE = "2G";
const START_TIMEOUT_MS = 10_000;

/** The local-disk baseline: a file on the disk that holds every other target's data, with O_DIRECT. */
export function localFileTarget(workDir: string): Target {
  const file = join(workDir, "local.img");
  return {
    id: "local",
    engineArgs: ["--ioengine=libaio", "--direct=1", `--filename=${file}`],
    check: () => undefined,
    stop: async () => undefined,
  };
}

/** nbdkit with one of its plugins on a unix socket: `file FILE` (the ceiling for an NBD server here) or `memory SIZE`. */
export async function nbdkitTarget(workDir: string, plugin: "file" | "memory"): Promise<Target> {
  const socket = join(workDir, `nbdkit-${plugin}.sock`);
  const pluginArgs =
    plugin === "file" ? ["file", await sparseFile(join(workDir, "nbdkit.img"))] : ["memory", "2G"];
  // Foreground, so it is our child and its pid is the server's; --exit-with-parent in case this run dies.
  const child = spawnTracked("nbdkit", ["-f", "--exit-with-parent", "--unix", socket, ...pluginArgs], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const uri = `nbd+unix:///?socket=${socket}`;
  await waitForNbd(uri, child, () => stderr);
  return {
    id: plugin === "file" ? "nbdkit-file" : "nbdkit-memory",
    engineArgs: ["--ioengine=nbd", `--uri=${uri}`],
    pid: child.pid,
    check: () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nbdkit exited:\n${stderr}`);
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = exitOf(child);
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * Starts an agent on `dir` and attaches the bench volume, creating it first when `create` is set. Stopping
 * detaches the volume and stops the agent with SIGTERM; the volume stays, with its data, for a later agent on
 * the same dir and port, unless `deleteAtStop` is set.
 */
export async function holdfastTarget(
  dir: string,
  options: { create: boolean; port?: number; nodeFlags?: string[]; deleteAtStop?: boolean },
): Promise<Target> {
  const agent = await BenchAgent.start({ dir, port: options.port, nodeFlags: options.nodeFlags });
  try {
    if (options.create) {
      await agent.json("volume", "create", `name=${VOLUME},size=${VOLUME_SIZE},repl=1,fs=none`);
    }
    const uri = await agent.attach(VOLUME);
    return {
      id: "holdfast",
      engineArgs: ["--ioengine=nbd", `--uri=${uri}`],
      pid: agent.pid,
      check: () => agent.check(),
      stop: async () => {
        try {
          await agent.json("volume", "detach", VOLUME);
          if (options.deleteAtStop) await agent.json("volume", "delete", VOLUME);
        } finally {
          await agent.stop();
        }
      },
    };
  } catch (err) {
    await agent.stop().catch(() => undefined);
    throw err;
  }
}

async function sparseFile(path: string): Promise<string> {
  await run("truncate", ["--size", VOLUME_SIZE, path]);
  return path;
}

/** Waits until the server answers an NBD handshake on `uri`; throws with its stderr if it exits first. */
async function waitForNbd(uri: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${child.spawnfile} exited while starting:\n${stderr()}`);
    }
    // A full handshake, rather than a bare connect that the server would log as a broken connection.
    const answered = await run("nbdinfo", ["--size", uri]).then(
      () => true,
      () => false,
    );
    if (answered) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `${child.spawnfile} did not serve ${uri} within ${START_TIMEOUT_MS / 1000} s:\n${stderr()}`,
  );
}
