import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOLDFAST } from "./agent-process.js";

/** What `holdfast dev up --output json` prints. */
export interface DevUp {
  etcd: string;
  token: string;
  nodes: Array<{ id: string; api: string; pid: number; zone: string }>;
}

/** The fields of `volume inspect --output json` the fabric tests read. */
export interface VolumeJson {
  name: string;
  health: string;
  attachedOn: string | null;
  epoch: number | null;
  replicas: Array<{ node: string; state: string }>;
}

/** Nodes whose replica of `v` is in sync, sorted. */
export function inSync(v: VolumeJson): string[] {
  return v.replicas
    .filter((r) => r.state === "in-sync")
    .map((r) => r.node)
    .sort();
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A real dev cluster (etcd and agents as processes) driven through the `holdfast` CLI, as a user would. */
export class DevCluster {
  private constructor(
    readonly dir: string,
    readonly up: DevUp,
  ) {}

  /** `holdfast dev up` on its own loopback /24 (`net`), so that test files do not collide. */
  static async start(net: string, args: string[] = []): Promise<DevCluster> {
    const dir = join(await mkdtemp(join(tmpdir(), "hf-fabric-")), "c");
    const r = await run(["dev", "up", "--dir", dir, "--net", net, "--output", "json", ...args]);
    if (r.code !== 0) throw new Error(`dev up failed (${r.code}): ${r.stderr}`);
    return new DevCluster(dir, JSON.parse(r.stdout) as DevUp);
  }

  /** Environment pointing the CLI at `node` (default: the first). */
  env(node = this.up.nodes[0]?.id): NodeJS.ProcessEnv {
    const api = this.up.nodes.find((n) => n.id === node)?.api;
    return { HOLDFAST_API: api, HOLDFAST_TOKEN: this.up.token };
  }

  /** `holdfast ARGS` against `node`'s agent; never throws. */
  hf(args: string[], node?: string): Promise<Run> {
    return run(args, this.env(node));
  }

  /** `holdfast ARGS --output json`, parsed; throws with stderr when it fails. */
  async json<T = Record<string, unknown>>(args: string[], node?: string): Promise<T> {
    const r = await this.hf([...args, "--output", "json"], node);
    if (r.code !== 0) throw new Error(`holdfast ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** The NBD socket of a volume attached on `node`. */
  nbdSocket(node: string, volume: string): string {
    return join(this.dir, node, "data", "run", "nbd", `${volume}.sock`);
  }

  async stop(node: string, signal = "SIGKILL"): Promise<void> {
    const r = await run(["dev", "stop", "--dir", this.dir, "--node", node, "--signal", signal]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  /**
   * Freezes `node`'s agent with SIGSTOP, as a stalled VM: its kernel still accepts TCP connections and ACKs data,
   * but the process answers nothing and its lease runs out. `thaw` sends SIGCONT.
   */
  async freeze(node: string): Promise<void> {
    process.kill(await this.pid(node), "SIGSTOP");
  }

  async thaw(node: string): Promise<void> {
    process.kill(await this.pid(node), "SIGCONT");
  }

  /** The pid of `node`'s agent as it runs now (`dev start` gives it a new one). */
  private async pid(node: string): Promise<number> {
    const state = JSON.parse(await readFile(join(this.dir, "dev.json"), "utf8")) as {
      nodes: Array<{ id: string; pid: number }>;
    };
    const pid = state.nodes.find((n) => n.id === node)?.pid;
    if (!pid) throw new Error(`no agent recorded for ${node}`);
    return pid;
  }

  async startNode(node: string): Promise<void> {
    const r = await run(["dev", "start", "--dir", this.dir, "--node", node]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  async down(): Promise<void> {
    await run(["dev", "down", "--dir", this.dir]);
    await rm(join(this.dir, ".."), { recursive: true, force: true });
  }
}

export function run(args: string[], env: NodeJS.ProcessEnv = {}, command = HOLDFAST): Promise<Run> {
  return new Promise((resolve) =>
    execFile(
      command,
      args,
      { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/**
 * Polls `check` until it returns a value (not undefined) or `ms` pass; the error says what was awaited. The deadline
 * holds even while one `check` hangs (a CLI call to an agent that waits on a frozen node).
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the last check did not finish")), deadline - Date.now());
    });
    try {
      const value = await Promise.race([check(), late]);
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
  );
}
