import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createClusterCa, issueNodeIdentity, saveIdentity } from "../../agent/src/transport/index.js";

const exec = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "../..");
export const HOLDFAST = join(ROOT, "bin/holdfast");

/** A free TCP port on `host` (the kernel picks it; we release it for the agent to take). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject()));
    });
  });
}

/** Sends `signal` to a child process that is still running and waits until it has exited. */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  await exited;
}

/**
 * Where an agent's API is: its host (a loopback address), and for one serving HTTPS (started with a cluster
 * certificate through `--tls-dir`) the CA file clients trust it by.
 */
export interface AgentAddress {
  /** @default "127.0.0.1" */
  host?: string;
  /** The cluster CA's ca.crt: the API is https, and the CLI gets it as HOLDFAST_CA. @default - plain http */
  caFile?: string;
}

/** A real agent process (the built bundle through bin/holdfast) with its own data dir. */
export class AgentProcess {
  child?: ChildProcess;
  token = "";
  log = "";

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly extraArgs: string[],
    readonly address: Required<Pick<AgentAddress, "host">> & AgentAddress,
  ) {}

  static async start(extraArgs: string[] = [], address: AgentAddress = {}): Promise<AgentProcess> {
    // Short paths: NBD unix socket paths must fit in 107 bytes.
    const dir = await mkdtemp(join(tmpdir(), "hf-"));
    const host = address.host ?? "127.0.0.1";
    const agent = new AgentProcess(dir, await freePort(host), extraArgs, { ...address, host });
    await agent.restart();
    return agent;
  }

  get url(): string {
    return `${this.address.caFile ? "https" : "http"}://${this.address.host}:${this.port}`;
  }

  get env(): NodeJS.ProcessEnv {
    const ca = this.address.caFile ? { HOLDFAST_CA: this.address.caFile } : {};
    return { ...process.env, HOLDFAST_API: this.url, HOLDFAST_TOKEN: this.token, ...ca };
  }

  /** Starts (or starts again) the agent on the same data dir and port; resolves when the API answers. */
  async restart(): Promise<void> {
    const child = spawnLogged(
      HOLDFAST,
      [
        "agent",
        "--data-dir",
        join(this.dir, "data"),
        "--node-id",
        "node1",
        "--api",
        `${this.address.host}:${this.port}`,
        "--mount-dir",
        join(this.dir, "mnt"),
        "--log-level",
        "info",
        // Each agent its own plugin and CSI sockets, so that agents of parallel tests never meet.
        "--plugin-socket",
        join(this.dir, "plugin.sock"),
        "--csi-socket",
        join(this.dir, "csi.sock"),
        ...this.extraArgs,
      ],
      this,
    );
    this.child = child;
    await agentReady(child, this, "agent", 20_000);
    this.token = (await readFile(join(this.dir, "data", "token"), "utf8")).trim();
  }

  /** Stops the agent with `signal` and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await stopChild(this.child, signal);
    this.log = "";
  }

  /** Runs `holdfast ARGS` against this agent; never throws, returns the exit code and output. */
  async cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await exec(HOLDFAST, args, { env: this.env, maxBuffer: 16 * 1024 * 1024 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof e.code === "number" ? e.code : 1,
        stdout: e.stdout ?? "",
        stderr: e.stderr ?? "",
      };
    }
  }

  /** `holdfast ARGS --output json`, parsed; throws with the CLI's stderr when it fails. */
  async json<T = Record<string, unknown>>(...args: string[]): Promise<T> {
    const r = await this.cli(...args, "--output", "json");
    if (r.code !== 0) throw new Error(`holdfast ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** A raw API request with this agent's token (or another). */
  async api(method: string, path: string, body?: unknown, token = this.token) {
    if (this.address.caFile)
      return apiOverTls(`${this.url}${path}`, {
        method,
        token,
        body,
        ca: await readFile(this.address.caFile, "utf8"),
      });
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** Stops the agent (SIGTERM, then SIGKILL) and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop("SIGTERM").catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A node's TLS material in `dir`, for an agent whose API serves https. */
export interface TlsFixture {
  /** The node's tls dir (ca.crt, node.crt, node.key), for `--tls-dir`. */
  tlsDir: string;
  /** The cluster CA's certificate, which clients trust the agent by. */
  caFile: string;
  /** Another cluster's CA certificate: a wrong CA to trust. */
  otherCaFile: string;
}

/** Makes a cluster CA, a node1 certificate for `host`, and another cluster's CA, in `dir`. */
export async function tlsFixture(dir: string, host: string, cluster: string): Promise<TlsFixture> {
  const fixture = {
    tlsDir: join(dir, "tls"),
    caFile: join(dir, "ca.crt"),
    otherCaFile: join(dir, "other-ca.crt"),
  };
  const ca = await createClusterCa({ cluster });
  await saveIdentity(fixture.tlsDir, await issueNodeIdentity(ca, { nodeId: "node1", addresses: [host] }));
  await writeFile(fixture.caFile, ca.certPem);
  await writeFile(fixture.otherCaFile, (await createClusterCa({ cluster: "other" })).certPem);
  return fixture;
}

/** Spawns an agent (or any command) whose stdout and stderr are appended to `sink.log`. */
export function spawnLogged(command: string, args: string[], sink: { log: string }): ChildProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  const append = (d: Buffer) => {
    sink.log += d;
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  return child;
}

/** Resolves once `sink.log` says "agent ready"; throws with the log if the agent exits first or `ms` pass. */
export async function agentReady(
  child: ChildProcess,
  sink: { log: string },
  what: string,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!sink.log.includes('"agent ready"')) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${sink.log}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start:\n${sink.log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a command and returns its output; throws with stderr when it fails. */
export async function sh(cmd: string, args: string[], timeout = 300_000): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${e.stderr || e.message}\n${e.stdout ?? ""}`);
  }
}

/**
 * An API request over https trusting `ca` only (fetch takes no CA of its own): the status and the body, parsed when
 * it is JSON (text otherwise, as /metrics is). A connection that fails rejects.
 */
export function apiOverTls(
  url: string,
  options: { ca: string; token: string; method?: string; body?: unknown },
): Promise<{ status: number; body: unknown }> {
  const { body } = options;
  const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolveResponse, reject) => {
    const req = httpsRequest(
      url,
      {
        method: options.method ?? "GET",
        ca: options.ca,
        headers: {
          authorization: `Bearer ${options.token}`,
          ...(text === undefined ? {} : { "content-type": "application/json" }),
        },
      },
      (res) => {
        let answer = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          answer += d;
        });
        res.on("end", () => {
          const json = String(res.headers["content-type"]).startsWith("application/json");
          resolveResponse({
            status: res.statusCode ?? 0,
            body: json && answer ? JSON.parse(answer) : answer || null,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}
