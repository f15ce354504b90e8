import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { HoldfastError } from "../errors.js";
import { FencedError, type Replica } from "../replica/index.js";
import { type NodeIdentity, serverTlsOptions, verifiedPeerNodeId } from "./cluster-ca.js";
import { decodeRequest, encodeReply, FrameReader, Op, type Request, Status } from "./wire.js";

export interface ReplicaServerOptions {
  /** This node's certificate; peers must present one from the same cluster CA. */
  identity: NodeIdentity;
  /** Address to listen on. */
  host: string;
  /** Port to listen on; 0 picks one. */
  port: number;
  /** Opens the replica of a volume on this node; rejects with a HoldfastError when there is none. */
  openReplica: (volumeId: string) => Promise<Replica>;
  logger: Logger;
}

/** One open replica shared by every engine connection that uses it. */
interface Shared {
  replica: Promise<Replica>;
  users: number;
}

/**
 * The replication port: serves this node's replicas to engines on other nodes over mutual TLS. Requests are
 * pipelined; every data request must carry the replica's current epoch, so an engine fenced by a newer
 * attachment gets `Fenced` on its next request.
 */
export class ReplicaServer {
  private readonly server: Server;
  private readonly open = new Map<string, Shared>();
  private readonly sockets = new Set<TLSSocket>();

  constructor(private readonly options: ReplicaServerOptions) {
    this.server = createServer(serverTlsOptions(options.identity), (socket) => this.serve(socket));
    this.server.on("tlsClientError", (err) =>
      options.logger.warn({ err: err.message }, "replication: peer refused"),
    );
  }

  /** Resolves with the port listened on. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        const address = this.server.address();
        resolve(typeof address === "object" && address ? address.port : this.options.port);
      });
    });
  }

  /** Stops listening and cuts every engine connection: engines see their requests fail at once. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    return closed;
  }

  private serve(socket: TLSSocket): void {
    const peer = verifiedPeerNodeId(socket) ?? "unknown";
    this.sockets.add(socket);
    const reader = new FrameReader();
    let volumeId: string | undefined;
    const reply = (status: number, id: number, payload?: Buffer) => {
      if (!socket.destroyed) for (const part of encodeReply(status, id, payload)) socket.write(part);
    };
    socket.on("data", (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.options.logger.warn({ peer, err: String(err) }, "replication: bad frame, disconnecting");
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        const request = decodeRequest(frame);
        if (request.op === Op.Open) {
          if (volumeId) {
            reply(Status.BadRequest, request.id, Buffer.from("this connection already opened a volume"));
            continue;
          }
          volumeId = parseVolumeId(request.payload);
          const id = volumeId;
          this.acquire(id).then(
            (r) =>
              reply(
                Status.Ok,
                request.id,
                Buffer.from(JSON.stringify({ size: r.size, blockSize: r.blockSize, epoch: r.epoch })),
              ),
            (err) => {
              this.release(id);
              volumeId = undefined;
              reply(Status.NotFound, request.id, Buffer.from(String((err as Error).message)));
            },
          );
          continue;
        }
        const shared = volumeId ? this.open.get(volumeId) : undefined;
        if (!shared) {
          reply(Status.BadRequest, request.id, Buffer.from("open a volume first"));
          continue;
        }
        shared.replica
          .then((replica) => this.execute(replica, request))
          .then(
            (data) => reply(Status.Ok, request.id, data),
            (err) =>
              reply(
                statusOf(err),
                request.id,
                // A fenced engine learns the epoch that fenced it; other errors carry their message.
                Buffer.from(
                  err instanceof FencedError ? String(err.highest) : String((err as Error).message),
                ),
              ),
          );
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      this.sockets.delete(socket);
      if (volumeId) this.release(volumeId);
    });
  }

  private async execute(replica: Replica, r: Request): Promise<Buffer | undefined> {
    if (r.op === Op.Admit) {
      await replica.admit(r.epoch);
      return undefined;
    }
    // Only the engine holding the newest admitted epoch may touch the data.
    if (r.epoch !== replica.epoch) throw new FencedError(r.epoch, replica.epoch);
    switch (r.op) {
      case Op.Read:
        return replica.read(r.offset, r.count);
      case Op.Write:
        await replica.write(r.offset, r.payload);
        return undefined;
      case Op.Flush:
        await replica.flush();
        return undefined;
      case Op.Zero:
        await replica.writeZeroes(r.offset, r.count);
        return undefined;
      case Op.Grow:
        await replica.grow(r.offset);
        return undefined;
      default:
        throw new HoldfastError("replication.bad_op", `unknown operation ${r.op}`, { status: 400 });
    }
  }

  private acquire(volumeId: string): Promise<Replica> {
    let shared = this.open.get(volumeId);
    if (!shared) {
      shared = { replica: this.options.openReplica(volumeId), users: 0 };
      this.open.set(volumeId, shared);
    }
    shared.users++;
    return shared.replica;
  }

  private release(volumeId: string): void {
    const shared = this.open.get(volumeId);
    if (!shared || --shared.users > 0) return;
    this.open.delete(volumeId);
    shared.replica.then((r) => r.close()).catch(() => undefined);
  }
}

function parseVolumeId(payload: Buffer): string {
  try {
    const { volumeId } = JSON.parse(payload.toString()) as { volumeId?: unknown };
    return typeof volumeId === "string" ? volumeId : "";
  } catch {
    return "";
  }
}

function statusOf(err: unknown): number {
  if (err instanceof FencedError) return Status.Fenced;
  if (err instanceof RangeError) return Status.Range;
  if (err instanceof HoldfastError && err.status < 500) return Status.BadRequest;
  return Status.Io;
}
