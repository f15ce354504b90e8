import { connect, type TLSSocket } from "node:tls";
import type { ReplicaTarget } from "../engine/index.js";
import { OperationError } from "../errors.js";
import { FencedError } from "../replica/index.js";
import { clientTlsOptions, type NodeIdentity } from "./cluster-ca.js";
import { corkedWriter, decodeReply, encodeRequest, FrameReader, Op, Status } from "./wire.js";

export interface RemoteReplicaOptions {
  /** This node's certificate, presented to the replica's node. */
  identity: NodeIdentity;
  /** The node that holds the replica: its id (checked against its certificate) and replication address. */
  nodeId: string;
  host: string;
  port: number;
  volumeId: string;
  /**
   * A request unanswered this long fails the connection, and with it every request in flight: a replica on a node
   * that hangs or is cut off counts as failed rather than stalling the volume.
   * @default 10000
   */
  requestTimeoutMs?: number;
}

interface Pending {
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
  sentAt: number;
}

/** A replica on another node, reached over the replication port; the engine uses it like the local one. */
export class RemoteReplica implements ReplicaTarget {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private epoch = 0;
  private failure?: Error;
  private readonly watchdog: NodeJS.Timeout;
  private readonly send: (parts: Buffer[]) => void;
  size = 0;
  blockSize = 4096;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly options: RemoteReplicaOptions,
  ) {
    this.send = corkedWriter(socket);
    const reader = new FrameReader();
    socket.on("data", (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      for (const frame of frames) {
        const { status, id, payload } = decodeReply(frame);
        const waiting = this.pending.get(id);
        if (!waiting) continue;
        this.pending.delete(id);
        if (status === Status.Ok) waiting.resolve(payload);
        else if (status === Status.Fenced)
          waiting.reject(new FencedError(this.epoch, Number(payload.toString())));
        else if (status === Status.Range) waiting.reject(new RangeError(payload.toString()));
        else
          waiting.reject(
            new OperationError("replica.remote", `replica on ${options.nodeId}: ${payload.toString()}`),
          );
      }
    });
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection closed")));
    const timeout = options.requestTimeoutMs ?? 10_000;
    this.watchdog = setInterval(
      () => {
        const now = Date.now();
        for (const waiting of this.pending.values()) {
          if (now - waiting.sentAt < timeout) continue;
          this.fail(new Error(`no answer within ${timeout} ms`));
          socket.destroy();
          return;
        }
      },
      Math.min(1000, timeout),
    ).unref();
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
      ...clientTlsOptions(options.identity, options.nodeId),
    });
    // Each request is one small frame waiting for its answer: Nagle's algorithm with delayed ACKs would hold it
    // for tens of milliseconds.
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    }).catch((err) => {
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
    clearInterval(this.watchdog);
    this.fail(new Error("closed by this node"));
    this.socket.end();
  }

  private call(op: number, offset: number, count: number, payload?: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.unreachable(this.failure));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, sentAt: Date.now() });
      this.send(encodeRequest({ op, id, epoch: this.epoch, offset, count }, payload));
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    clearInterval(this.watchdog);
    for (const waiting of this.pending.values()) waiting.reject(this.unreachable(err));
    this.pending.clear();
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
