import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { EtcdStore, etcdClientOptions, readEtcdTls } from "../../agent/src/meta/index.js";
import { rootTls } from "../../agent/src/transport/index.js";
import { HOLDFAST } from "./agent-process.js";
import { NBD, RawNbdClient } from "./nbd-client.js";

/** What `holdfast dev up --output json` prints. */
export interface DevUp {
  etcd: string;
  token: string;
  /** The cluster CA's certificate (HOLDFAST_CA): the nodes' APIs are https. */
  ca: string;
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

/** A node joined to a dev cluster from outside `holdfast dev` (such as a NetnsNode), driven as its own nodes are. */
export interface GuestNode {
  readonly id: string;
  readonly api: string;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  freeze(): void;
  thaw(): void;
  /** Stops it for good and removes what it set up on the host. */
  remove(): Promise<void>;
}

/**
 * The store flags of a dev cluster in `dir` whose etcd is at `etcdUrl`: etcds:// with the cluster's etcd client
 * certificate (CN holdfast-dev), as its own nodes use, for agents and `cluster` commands started beside it.
 */
export function devStoreArgs(dir: string, etcdUrl: string): string[] {
  const client = join(dir, "etcd", "client");
  return [
    ...["--store", `etcds://${new URL(etcdUrl).host}`, "--cluster", "dev"],
    ...["--etcd-ca", join(client, "ca.crt"), "--etcd-cert", join(client, "client.crt")],
    ...["--etcd-key", join(client, "client.key")],
  ];
}

/** A store client of the dev cluster in `dir`, as its nodes have it (the cluster's prefix and etcd role). */
export async function devEtcdStore(dir: string, etcdUrl: string): Promise<EtcdStore> {
  const client = join(dir, "etcd", "client");
  return EtcdStore.open({
    endpoints: [etcdUrl],
    prefix: "/holdfast/dev/",
    tls: await readEtcdTls({
      etcdCa: join(client, "ca.crt"),
      etcdCert: join(client, "client.crt"),
      etcdKey: join(client, "client.key"),
    }),
  });
}

/** A real dev cluster (etcd and agents as processes) driven through the `holdfast` CLI, as a user would. */
export class DevCluster {
  private readonly guests = new Map<string, GuestNode>();
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

  /** Takes `node` in: stop, startNode, freeze, thaw, hf and down then drive it as the dev nodes. */
  adopt(node: GuestNode): void {
    this.guests.set(node.id, node);
  }

  /** Every node's id: the dev nodes', then the guests'. */
  get nodeIds(): string[] {
    return [...this.up.nodes.map((n) => n.id), ...this.guests.keys()];
  }

  /** Environment pointing the CLI at `node` (default: the first). */
  env(node = this.up.nodes[0]?.id): NodeJS.ProcessEnv {
    const api =
      node && this.guests.has(node)
        ? this.guests.get(node)?.api
        : this.up.nodes.find((n) => n.id === node)?.api;
    return { HOLDFAST_API: api, HOLDFAST_TOKEN: this.up.token, HOLDFAST_CA: this.up.ca };
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

  /**
   * Attaches `volume` on `node` as a takeover: the attach is refused while the old engine's node still holds its
   * lease, so it is retried until it succeeds or `boundMs` pass; the timeout names the last refusal.
   */
  takeOver(volume: string, node: string, boundMs: number): Promise<VolumeJson> {
    return waitFor(
      `${node} to take ${volume} over within ${boundMs} ms`,
      async () => {
        const r = await this.hf(["volume", "attach", volume, "--output", "json"], node);
        if (r.code !== 0) throw new Error(r.stderr.trim());
        return JSON.parse(r.stdout) as VolumeJson;
      },
      boundMs,
    );
  }

  /** The store flags of this cluster's agents (see {@link devStoreArgs}). */
  storeArgs(): string[] {
    return devStoreArgs(this.dir, this.up.etcd);
  }

  /** An etcd client as root (etcd's root certificate from the dev cluster's PKI), to read and plant records. */
  async etcdRoot(): Promise<Etcd3> {
    const tls = await rootTls(join(this.dir, "etcd", "pki"));
    return new Etcd3(etcdClientOptions({ endpoints: [this.up.etcd], tls }));
  }

  /** `node`'s agent log, as written so far. */
  agentLog(node: string): Promise<string> {
    return readFile(join(this.dir, node, "agent.log"), "utf8");
  }

  /** The NBD socket of a volume attached on `node`. */
  nbdSocket(node: string, volume: string): string {
    return join(this.dir, node, "data", "run", "nbd", `${volume}.sock`);
  }

  async stop(node: string, signal = "SIGKILL"): Promise<void> {
    const guest = this.guests.get(node);
    if (guest) return guest.stop(signal as NodeJS.Signals);
    const r = await run(["dev", "stop", "--dir", this.dir, "--node", node, "--signal", signal]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  /**
   * Freezes `node`'s agent with SIGSTOP, as a stalled VM: its kernel still accepts TCP connections and ACKs data,
   * but the process answers nothing and its lease runs out. `thaw` sends SIGCONT.
   */
  async freeze(node: string): Promise<void> {
    const guest = this.guests.get(node);
    if (guest) return guest.freeze();
    process.kill(await this.pid(node), "SIGSTOP");
  }

  async thaw(node: string): Promise<void> {
    const guest = this.guests.get(node);
    if (guest) return guest.thaw();
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
    const guest = this.guests.get(node);
    if (guest) return guest.start();
    const r = await run(["dev", "start", "--dir", this.dir, "--node", node]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  async down(): Promise<void> {
    for (const guest of this.guests.values()) await guest.remove().catch(() => undefined);
    await run(["dev", "down", "--dir", this.dir]);
    await rm(join(this.dir, ".."), { recursive: true, force: true });
  }
}

/**
 * One NBD connection with requests pipelined, as real clients send them: any number in flight, their replies (in any
 * order) matched by cookie. When the connection fails, every request still waiting rejects.
 */
export class NbdLane {
  private nextCookie = 1n;
  private readonly waiting = new Map<
    bigint,
    { length: number; resolve: (r: { error: number; data?: Buffer }) => void; reject: (e: Error) => void }
  >();
  private pumping = false;
  private failure: Error | undefined;

  private constructor(
    private readonly client: RawNbdClient,
    private readonly replyMs: number,
  ) {}

  /** `replyMs` bounds the wait for each reply: a write may wait out the drop of a frozen replica. */
  static async open(socket: string, name: string, replyMs = 60_000): Promise<NbdLane> {
    return new NbdLane((await RawNbdClient.open(socket, name)).client, replyMs);
  }

  /** Resolves with the reply's NBD error (0: acknowledged); rejects if the connection fails first. */
  async write(offset: number, payload: Buffer): Promise<number> {
    return (await this.send({ type: NBD.CMD_WRITE, offset, length: payload.length, payload })).error;
  }

  async flush(): Promise<number> {
    return (await this.send({ type: NBD.CMD_FLUSH })).error;
  }

  /** The bytes at `offset`; throws on an NBD error. */
  async read(offset: number, length: number): Promise<Buffer> {
    const r = await this.send({ type: NBD.CMD_READ, offset, length });
    if (r.error !== 0 || !r.data) throw new Error(`read of ${length} at ${offset} failed with ${r.error}`);
    return r.data;
  }

  close(): void {
    this.client.close();
  }

  private send(request: {
    type: number;
    offset?: number;
    length?: number;
    payload?: Buffer;
  }): Promise<{ error: number; data?: Buffer }> {
    if (this.failure) return Promise.reject(this.failure);
    const cookie = this.nextCookie++;
    const answered = new Promise<{ error: number; data?: Buffer }>((resolve, reject) => {
      const length = request.type === NBD.CMD_READ ? (request.length ?? 0) : 0;
      this.waiting.set(cookie, { length, resolve, reject });
    });
    this.client.sendRequest({ ...request, cookie });
    if (!this.pumping) void this.pump();
    return answered;
  }

  /** Reads replies while any request waits: an idle connection is not read, so its silence is no timeout. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiting.size > 0) {
        const reply = await this.client.readReply(this.replyMs);
        const waiter = this.waiting.get(reply.cookie);
        if (!waiter) throw new Error(`a reply for cookie ${reply.cookie}, which nothing waits for`);
        this.waiting.delete(reply.cookie);
        const data =
          reply.error === 0 && waiter.length > 0 ? await this.client.read(waiter.length) : undefined;
        waiter.resolve({ error: reply.error, data });
      }
    } catch (err) {
      this.failure = err as Error;
      for (const waiter of this.waiting.values()) waiter.reject(this.failure);
      this.waiting.clear();
      this.client.close();
    } finally {
      this.pumping = false;
    }
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
