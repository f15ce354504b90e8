import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, ROOT } from "../test/support/agent-process.js";
import { exitOf, run, spawnTracked } from "./system.js";

const HOLDFAST = join(ROOT, "bin/holdfast");
const BUNDLE = join(ROOT, "dist/holdfast.mjs");
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 30_000;
/** pino's numeric levels: 50 is error, 60 fatal. */
const ERROR_LEVEL = 50;

export interface AgentOptions {
  /** Holds the agent's data dir and mount dir; the same dir again restarts the same node with its volumes. */
  dir: string;
  /** The API port; reuse it to restart the same node. */
  port?: number;
  /**
   * Node flags (such as --cpu-prof). With none the agent runs through bin/holdfast as a host runs it; with
   * some it runs `node FLAGS dist/holdfast.mjs` with bin/holdfast's environment and flags.
   */
  nodeFlags?: string[];
}

/** One agent process, started as a host starts it, driven through the `holdfast` CLI. */
export class BenchAgent {
  private constructor(
    private readonly child: ChildProcess,
    private readonly output: Output,
    readonly port: number,
    readonly token: string,
  ) {}

  static async start(options: AgentOptions): Promise<BenchAgent> {
    const port = options.port ?? (await freePort());
    const dataDir = join(options.dir, "data");
    const agentArgs = [
      "agent",
      ...["--data-dir", dataDir, "--node-id", "bench", "--api", `127.0.0.1:${port}`],
      ...["--mount-dir", join(options.dir, "mnt"), "--log-level", "warn"],
    ];
    const flags = options.nodeFlags ?? [];
    const child =
      flags.length === 0
        ? spawnTracked(HOLDFAST, agentArgs)
        : spawnTracked("node", [...flags, "--enable-source-maps", BUNDLE, ...agentArgs], {
            // As bin/holdfast sets it: the data path's file I/O runs on libuv's pool, which QD16 would starve.
            env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "16" },
          });
    const output = new Output(child);
    const token = await waitUntilServing(child, port, join(dataDir, "token"), output);
    return new BenchAgent(child, output, port, token);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Runs `holdfast ARGS --output json` against this agent and parses what it prints. */
  async json<T>(...args: string[]): Promise<T> {
    const env = { ...process.env, HOLDFAST_API: `http://127.0.0.1:${this.port}`, HOLDFAST_TOKEN: this.token };
    return JSON.parse(await run(HOLDFAST, [...args, "--output", "json"], { env })) as T;
  }

  /** Attaches volume `name` here and returns its NBD URI. */
  async attach(name: string): Promise<string> {
    const view = await this.json<{ nbd: string | null }>("volume", "attach", name);
    if (!view.nbd) throw new Error(`holdfast volume attach ${name} printed no nbd URI`);
    return view.nbd;
  }

  /** Throws if the agent has exited or logged an error: a benchmark of a failing agent means nothing. */
  check(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(
        `the agent exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.output.text}`,
      );
    }
    const errors = this.output.text.split("\n").filter((line) => logLevel(line) >= ERROR_LEVEL);
    if (errors.length > 0) throw new Error(`the agent logged errors:\n${errors.slice(0, 10).join("\n")}`);
  }

  /** SIGTERM (the agent detaches and exits, writing a --cpu-prof profile), then waits for it to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = exitOf(this.child);
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    const status = await exited.finally(() => clearTimeout(timer));
    if (status !== 0) throw new Error(`the agent exited with ${status} on SIGTERM:\n${this.output.text}`);
  }
}

/** Waits for the agent to write its token and answer an authenticated API call; returns the token. */
async function waitUntilServing(
  child: ChildProcess,
  port: number,
  tokenPath: string,
  output: Output,
): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the agent exited while starting (${child.exitCode ?? child.signalCode}):\n${output.text}`,
      );
    }
    const token = (await readFile(tokenPath, "utf8").catch(() => "")).trim();
    if (token) {
      const answered = await fetch(`http://127.0.0.1:${port}/v1/cluster`, {
        headers: { authorization: `Bearer ${token}` },
      }).then(
        (res) => res.ok,
        () => false,
      );
      if (answered) return token;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`the agent did not serve its API within ${START_TIMEOUT_MS / 1000} s:\n${output.text}`);
}

/** Everything a child prints, stdout and stderr interleaved (the agent logs little at warn level). */
class Output {
  text = "";

  constructor(child: ChildProcess) {
    const keep = (d: Buffer) => {
      this.text += d;
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
  }
}

/** The pino level of a log line, or 0 for anything that is not a pino JSON line. */
function logLevel(line: string): number {
  if (!line.startsWith("{")) return 0;
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return typeof level === "number" ? level : 0;
  } catch {
    return 0;
  }
}
