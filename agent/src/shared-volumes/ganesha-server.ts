import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { OperationError } from "../errors.js";
import { type Logger, withoutFuse } from "../frontend/index.js";
import { GaneshaExport, ganeshaConfig } from "./ganesha-config.js";

/** How to run the Ganesha that serves one shared volume. */
export interface GaneshaServerOptions {
  /** What to export, where, and on which port. */
  readonly export: GaneshaExport;
  /** A directory of this node (not the volume) for the configuration, the log and the pid file. */
  readonly runDir: string;
  readonly logger: Logger;
  /**
   * The Ganesha program.
   * @default "ganesha.nfsd"
   */
  readonly program?: string;
  /**
   * Milliseconds to wait for Ganesha to accept connections before the start fails.
   * @default 20000
   */
  readonly startTimeoutMs?: number;
  /** Called after Ganesha died on its own and a new one is serving again; the argument counts such restarts. */
  readonly onRestart?: (restarts: number) => void;
}

const DEFAULT_START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const PORT_POLL_MS = 50;
const RESTART_BACKOFF_MS = [200, 500, 1_000, 2_000, 5_000];
// A server that stayed up this long is healthy again: the next death restarts it without waiting.
const HEALTHY_AFTER_MS = 30_000;

/** Resolves once something accepts a TCP connection on host:port, or rejects when `gaveUp` says to stop. */
async function waitForPort(host: string, port: number, gaveUp: () => string | undefined): Promise<void> {
  for (;;) {
    const reason = gaveUp();
    if (reason) throw new OperationError("shared.start_failed", reason);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, PORT_POLL_MS));
  }
}

/** The last lines of Ganesha's log, for an error that says why it would not start. */
async function logTail(path: string): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  const lines = text.trimEnd().split("\n");
  const serious = lines.filter(
    (line) => /:(CRIT|MAJ|FATAL) :/.test(line) && !/DBUS|krb5|keytab|principal/.test(line),
  );
  return (serious.length > 0 ? serious : lines).slice(-4).join("\n");
}

/**
 * One Ganesha process serving one shared volume, supervised: started with a generated configuration, restarted
 * when it dies on its own (its clients reclaim their state in the grace period that follows), stopped on request.
 * The process gets SIGKILL when the agent dies (`setpriv --pdeathsig`): a Ganesha whose agent is gone serves a file
 * system whose device no longer answers, and holds a port the next server needs.
 */
export class GaneshaServer {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: GaneshaServerOptions,
    private readonly exported: ReturnType<typeof GaneshaExport.parse>,
  ) {}

  /** Writes the configuration, starts Ganesha and resolves once it accepts connections. */
  static async start(options: GaneshaServerOptions): Promise<GaneshaServer> {
    const config = ganeshaConfig(options.export);
    const server = new GaneshaServer(options, GaneshaExport.parse(options.export));
    await mkdir(options.runDir, { recursive: true, mode: 0o700 });
    await mkdir(server.exported.recoveryRoot, { recursive: true, mode: 0o700 });
    await server.killLeftover();
    await writeFile(server.configPath, config, { mode: 0o600 });
    await server.launch();
    return server;
  }

  /** The address clients of this node connect to. */
  get address(): { host: string; port: number } {
    return { host: this.exported.bindAddress, port: this.exported.port };
  }

  /** The running Ganesha's process id, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private get configPath(): string {
    return join(this.options.runDir, "ganesha.conf");
  }

  private get logPath(): string {
    return join(this.options.runDir, "ganesha.log");
  }

  private get pidPath(): string {
    return join(this.options.runDir, "ganesha.pid");
  }

  /** A Ganesha left by an agent that died before `setpriv` could kill it (a SIGKILL between fork and exec). */
  private async killLeftover(): Promise<void> {
    const pid = Number((await readFile(this.pidPath, "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 0) return;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(this.configPath)) return;
    this.options.logger.warn({ pid }, "killing a Ganesha left by an earlier agent");
    process.kill(pid, "SIGKILL");
    while (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined)) {
      await new Promise((resolve) => setTimeout(resolve, PORT_POLL_MS));
    }
  }

  private async launch(): Promise<void> {
    const program = this.options.program ?? "ganesha.nfsd";
    const args = ["--pdeathsig", "SIGKILL", "--", program, "-F", "-f", this.configPath];
    args.push("-L", this.logPath, "-p", this.pidPath, "-N", "NIV_EVENT");
    const child = spawn("setpriv", args, { stdio: ["ignore", "ignore", "pipe", ...withoutFuse()] });
    this.child = child;
    let exited: string | undefined;
    let serving = false;
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr = (stderr + s).slice(-2000);
    });
    child.once("error", (err) => {
      exited = `${program} could not be started: ${err.message}`;
    });
    child.once("exit", (code, signal) => {
      exited ??= `${program} exited (${signal ?? `code ${code}`})`;
      if (this.child === child) this.child = undefined;
      // One that dies before it serves is the start's failure, reported by the start.
      if (!this.stopping && serving) this.scheduleRestart(exited);
    });
    const { host, port } = this.address;
    const deadline = Date.now() + (this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    try {
      await waitForPort(host, port, () => {
        if (exited) return exited;
        if (Date.now() > deadline) return `${program} did not accept connections on ${host}:${port} in time`;
        return undefined;
      });
    } catch (err) {
      child.kill("SIGKILL");
      const detail = (await logTail(this.logPath)) || stderr.trim();
      throw new OperationError(
        "shared.start_failed",
        `${(err as Error).message}${detail ? `: ${detail}` : ""} (log: ${this.logPath})`,
      );
    }
    serving = true;
    this.startedAt = Date.now();
    this.options.logger.info(
      { pid: child.pid, host, port, volume: this.exported.volumeName },
      "Ganesha serving",
    );
  }

  private scheduleRestart(why: string): void {
    if (Date.now() - this.startedAt > HEALTHY_AFTER_MS) this.restarts = 0;
    const delay = RESTART_BACKOFF_MS[Math.min(this.restarts, RESTART_BACKOFF_MS.length - 1)] ?? 5_000;
    this.restarts++;
    this.options.logger.warn(
      { why, delayMs: delay, volume: this.exported.volumeName },
      "Ganesha died; restarting",
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.launch().then(
        () => this.options.onRestart?.(this.restarts),
        (err: Error) => {
          this.options.logger.error({ err: err.message }, "Ganesha restart failed");
          if (!this.stopping) this.scheduleRestart(err.message);
        },
      );
    }, delay);
  }

  /** Stops Ganesha (SIGTERM, then SIGKILL after 10 s) and does not restart it. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.pidPath, { force: true });
  }
}
