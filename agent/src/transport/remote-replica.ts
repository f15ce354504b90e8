import { connect, type TLSSocket } from "node:tls";
import { FencedError, type ReplicaTarget } from "../contracts/index.js";
import { ForbiddenError, OperationError } from "../errors.js";
import { clientTlsOptions, type NodeIdentity } from "./cluster-ca.js";
import {
  corkedWriter,
  decodeReply,
  encodeRequest,
  FrameReader,
  Op,
  Status,
  WINDOW_BYTES,
  WINDOW_REQUESTS,
} from "./wire.js";

export interface RemoteReplicaOptions {
  /** This node's certificate, presented to the replica's node. */
  identity: NodeIdentity;
  /** The node that holds the replica: its id (checked against its certificate) and replication address. */
  nodeId: string;
  host: string;
  port: number;
  volumeId: string;
  /** Whether a serial is revoked (the list as last read): a replica's node presenting one is not connected to. */
  revoked?: (serial: string) => boolean;
  /**
   * Bound on the TCP connect and the TLS handshake together. A healthy peer needs milliseconds; a frozen node's
   * kernel accepts the connection and ACKs the ClientHello for a process that never answers it.
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * While any request is outstanding the replica must send something at least this often (an answer, or the answer
   * to a ping the engine sends when it has heard nothing for a fifth of this), or the connection fails with every
   * request in flight. The replica's event loop answers a ping at once, however long its disk takes: this is what
   * finds a node that froze or was cut off.
   * @default 5000
   */
  livenessTimeoutMs?: number;
  /**
   * Any request but a flush unanswered this long fails the connection, although pings are answered: a disk whose
   * I/O never returns, on a node whose agent still runs.
   * @default 30000
   */
  requestTimeoutMs?: number;
  /**
   * The same for a flush, which waits on fsync: a healthy replica on a slow or busy disk may take many seconds, and
   * failing it then would make it flap out of the in-sync set and back.
   * @default 120000
   */
  flushTimeoutMs?: number;
}

interface Pending {
  op: number;
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
  sentAt: number;
  /** What it counts against the window: its payload, or the bytes a read asks for. */
  bytes: number;
}

interface Queued extends Omit<Pending, "sentAt"> {
  id: number;
  /** The engine's epoch when it asked (an admit raises it for what is asked after). */
  epoch: number;
  offset: number;
  count: number;
  payload?: Buffer;
}

/** A replica on another node, reached over the replication port; the engine uses it like the local one. */
export class RemoteReplica implements ReplicaTarget {
  /** Requests sent and not yet answered: at most the window (wire.ts). */
  private readonly pending = new Map<number, Pending>();
  /** Requests waiting for room in the window, in order. */
  private queued: Queued[] = [];
  private pendingBytes = 0;
  private nextId = 1;
  private epoch = 0;
  private failure?: Error;
  private readonly watchdog: NodeJS.Timeout;
  /** When the replica last sent anything, or when the engine started waiting on it, if later. */
  private heardAt = Date.now();
  private pingId?: number;
  private readonly liveness: number;
  private readonly pingAfter: number;
  private readonly send: (parts: Buffer[]) => void;
  private closedHere = false;
  private onLost: (cause: unknown) => void = () => {};
  /** Settles, with the cause, when the connection fails for any reason but close() here. */
  readonly lost = new Promise<unknown>((resolve) => {
    this.onLost = resolve;
  });
  size = 0;
  blockSize = 4096;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly options: RemoteReplicaOptions,
  ) {
    this.send = corkedWriter(socket);
    const reader = new FrameReader();
    socket.on("data", (chunk: Buffer) => {
      // Bytes of a large answer still arriving count as progress, not only whole frames.
      this.heardAt = Date.now();
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      for (const frame of frames) {
        const { status, id, payload } = decodeReply(frame);
        if (id === this.pingId) {
          this.pingId = undefined;
          continue;
        }
        const waiting = this.pending.get(id);
        if (!waiting) continue;
        this.pending.delete(id);
        this.pendingBytes -= waiting.bytes;
        this.sendQueued();
        if (status === Status.Ok) waiting.resolve(payload);
        else if (status === Status.Fenced)
          waiting.reject(new FencedError(this.epoch, Number(payload.toString())));
        else if (status === Status.Range) waiting.reject(new RangeError(payload.toString()));
        else if (status === Status.Forbidden)
          waiting.reject(
            new ForbiddenError("replica.forbidden", `replica on ${options.nodeId}: ${payload.toString()}`),
          );
        else
          waiting.reject(
            new OperationError("replica.remote", `replica on ${options.nodeId}: ${payload.toString()}`),
          );
      }
    });
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection closed")));
    this.liveness = options.livenessTimeoutMs ?? 5000;
    this.pingAfter = Math.min(1000, this.liveness / 5);
    this.watchdog = setInterval(() => this.watch(), this.pingAfter).unref();
  }

  /** Connects with mutual TLS and opens the volume's replica on that node. */
  static async connect(options: RemoteReplicaOptions): Promise<RemoteReplica> {
    const remote = await RemoteReplica.dial(options);
    try {
      const answer = JSON.parse(
        (
          await remote.call(Op.Open, 0, 0, Buffer.from(JSON.stringify({ volumeId: options.volumeId })))
        ).toString(),
      ) as { size: number; blockSize: number };
      remote.size = answer.size;
      remote.blockSize = answer.blockSize;
      return remote;
    } catch (err) {
      remote.close();
      throw err;
    }
  }

  /** Has the node create its replica of a volume; resolves with the pool it chose. */
  static async create(
    options: RemoteReplicaOptions,
    spec: { size: number; blockSize: number },
  ): Promise<{ pool: string }> {
    const payload = JSON.stringify({ volumeId: options.volumeId, ...spec });
    const answer = await RemoteReplica.once(options, Op.Create, payload);
    return JSON.parse(answer.toString()) as { pool: string };
  }

  /** Has the node delete its replica of a volume. */
  static async destroy(options: RemoteReplicaOptions): Promise<void> {
    await RemoteReplica.once(options, Op.Destroy, JSON.stringify({ volumeId: options.volumeId }));
  }

  private static async once(options: RemoteReplicaOptions, op: number, payload: string): Promise<Buffer> {
    const remote = await RemoteReplica.dial(options);
    try {
      return await remote.call(op, 0, 0, Buffer.from(payload));
    } finally {
      remote.close();
    }
  }

  private static async dial(options: RemoteReplicaOptions): Promise<RemoteReplica> {
    const socket = connect({
      host: options.host,
      port: options.port,
      ...clientTlsOptions(options.identity, options.nodeId, options.revoked),
    });
    // Each request is one small frame waiting for its answer: Nagle's algorithm with delayed ACKs would hold it
    // for tens of milliseconds.
    socket.setNoDelay(true);
    const limit = options.connectTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`TCP connect and TLS handshake not done within ${limit} ms`)),
        limit,
      );
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    })
      .finally(() => clearTimeout(timer))
      .catch((err) => {
        socket.destroy();
        throw new OperationError(
          "replica.unreachable",
          `cannot reach ${options.nodeId} at ${options.host}:${options.port}: ${(err as Error).message}`,
          err,
        );
      });
    return new RemoteReplica(socket, options);
  }

  async admit(epoch: number): Promise<void> {
    this.epoch = epoch;
    await this.call(Op.Admit, 0, 0);
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.call(Op.Read, offset, length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.call(Op.Write, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.call(Op.Flush, 0, 0);
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.call(Op.Zero, offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.call(Op.Zero, offset, length);
  }

  async grow(size: number): Promise<void> {
    await this.call(Op.Grow, size, 0);
    this.size = size;
  }

  /** The regions in the replica's activity log. */
  async activeRegions(): Promise<number[]> {
    return JSON.parse((await this.call(Op.Regions, 0, 0)).toString()) as number[];
  }

  async regionChecksum(region: number): Promise<string> {
    return (await this.call(Op.Checksum, region, 0)).toString();
  }

  close(): void {
    this.closedHere = true;
    clearInterval(this.watchdog);
    this.fail(new Error("closed by this node"));
    this.socket.end();
  }

  private call(op: number, offset: number, count: number, payload?: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.unreachable(this.failure));
    const id = this.nextId++;
    if (this.pending.size === 0) {
      // Silence while nothing was asked is no sign of a hang: the liveness clock starts now.
      this.heardAt = Date.now();
      this.pingId = undefined;
    }
    const bytes = (payload?.length ?? 0) + (op === Op.Read ? count : 0);
    return new Promise((resolve, reject) => {
      this.queued.push({ op, id, epoch: this.epoch, offset, count, payload, resolve, reject, bytes });
      this.sendQueued();
    });
  }

  /** Sends what fits in the window, in order; a request larger than the whole window goes alone. */
  private sendQueued(): void {
    while (this.queued.length > 0 && !this.failure) {
      const next = this.queued[0] as Queued;
      const fits =
        this.pending.size === 0 ||
        (this.pending.size < WINDOW_REQUESTS && this.pendingBytes + next.bytes <= WINDOW_BYTES);
      if (!fits) return;
      this.queued.shift();
      const { id, op, epoch, offset, count, payload, resolve, reject, bytes } = next;
      this.pending.set(id, { op, resolve, reject, sentAt: Date.now(), bytes });
      this.pendingBytes += bytes;
      this.send(encodeRequest({ op, id, epoch, offset, count }, payload));
    }
  }

  /** Fails the connection on a lack of progress or a request past its bound; pings when the replica is quiet. */
  private watch(): void {
    if (this.pending.size === 0) return;
    const now = Date.now();
    const silent = now - this.heardAt;
    if (silent >= this.liveness) {
      this.abort(`nothing from the replica for ${this.liveness} ms, not even the answer to a ping`);
      return;
    }
    for (const waiting of this.pending.values()) {
      const flush = waiting.op === Op.Flush;
      const limit = flush
        ? (this.options.flushTimeoutMs ?? 120_000)
        : (this.options.requestTimeoutMs ?? 30_000);
      if (now - waiting.sentAt < limit) continue;
      this.abort(`${flush ? "flush" : `request (op ${waiting.op})`} unanswered for ${limit} ms`);
      return;
    }
    if (this.pingId === undefined && silent >= this.pingAfter) {
      this.pingId = this.nextId++;
      this.send(encodeRequest({ op: Op.Ping, id: this.pingId, epoch: this.epoch, offset: 0, count: 0 }));
    }
  }

  private abort(reason: string): void {
    this.fail(new Error(reason));
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (!this.failure && !this.closedHere) this.onLost(this.unreachable(err));
    this.failure ??= err;
    clearInterval(this.watchdog);
    for (const waiting of [...this.pending.values(), ...this.queued]) waiting.reject(this.unreachable(err));
    this.pending.clear();
    this.queued = [];
    this.pendingBytes = 0;
  }

  private unreachable(err: Error): OperationError {
    const { nodeId, host, port } = this.options;
    return new OperationError(
      "replica.unreachable",
      `replica on ${nodeId} (${host}:${port}) failed: ${err.message}`,
      err,
    );
  }
}
