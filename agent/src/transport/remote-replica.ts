import { connect, type TLSSocket } from "node:tls";
import type { ReplicaTarget } from "../engine/index.js";
import { OperationError } from "../errors.js";
import { FencedError } from "../replica/index.js";
import { clientTlsOptions, type NodeIdentity } from "./cluster-ca.js";
import { decodeReply, encodeRequest, FrameReader, Op, Status } from "./wire.js";

export interface RemoteReplicaOptions {
  /** This node's certificate, presented to the replica's node. */
  identity: NodeIdentity;
  /** The node that holds the replica: its id (checked against its certificate) and replication address. */
  nodeId: string;
  host: string;
  port: number;
  volumeId: string;
}

interface Pending {
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
}

/** A replica on another node, reached over the replication port; the engine uses it like the local one. */
export class RemoteReplica implements ReplicaTarget {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private epoch = 0;
  private failure?: Error;
  size = 0;
  blockSize = 4096;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly options: RemoteReplicaOptions,
  ) {
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
  }

  /** Connects with mutual TLS and opens the volume's replica on that node. */
  static async connect(options: RemoteReplicaOptions): Promise<RemoteReplica> {
    const socket = connect({
      host: options.host,
      port: options.port,
      ...clientTlsOptions(options.identity, options.nodeId),
    });
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
    const remote = new RemoteReplica(socket, options);
    const answer = JSON.parse(
      (
        await remote.call(Op.Open, 0, 0, Buffer.from(JSON.stringify({ volumeId: options.volumeId })))
      ).toString(),
    ) as { size: number; blockSize: number };
    remote.size = answer.size;
    remote.blockSize = answer.blockSize;
    return remote;
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

  close(): void {
    this.socket.end();
  }

  private call(op: number, offset: number, count: number, payload?: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.unreachable(this.failure));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      for (const part of encodeRequest({ op, id, epoch: this.epoch, offset, count }, payload))
        this.socket.write(part);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
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
