import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { HoldfastError } from "../errors.js";
import { FencedError, type Replica } from "../replica/index.js";
import { type NodeIdentity, serverTlsOptions, verifiedPeerNodeId } from "./cluster-ca.js";
import { corkedWriter, decodeRequest, encodeReply, FrameReader, Op, type Request, Status } from "./wire.js";

export interface ReplicaServerOptions {
  /** This node's certificate; peers must present one from the same cluster CA. */
  identity: NodeIdentity;
  /** Address to listen on. */
  host: string;
  /** Port to listen on; 0 picks one. */
  port: number;
  /** Opens (or shares) the replica of a volume on this node; rejects with a HoldfastError when there is none. */
  openReplica: (volumeId: string) => Promise<Replica>;
  /** Gives back one openReplica. */
  closeReplica: (volumeId: string) => void;
  /** Creates a replica on this node for an engine placing a volume here; resolves with the pool chosen. */
  createReplica: (spec: ReplicaSpec) => Promise<{ pool: string }>;
  /** Deletes this node's replica of a volume, if it has one and nobody has it open. */
  destroyReplica: (volumeId: string) => Promise<void>;
  logger: Logger;
}

/** What an engine asks a node to create. */
export interface ReplicaSpec {
  volumeId: string;
  size: number;
  blockSize: number;
}

/**
 * The replication port: serves this node's replicas to engines on other nodes over mutual TLS. Requests are
 * pipelined; every data request must carry the replica's current epoch, so an engine fenced by a newer
 * attachment gets `Fenced` on its next request.
 */
export class ReplicaServer {
  private readonly server: Server;
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
    // Replies are small frames an engine waits on: send each at once rather than after a delayed ACK.
    socket.setNoDelay(true);
    const send = corkedWriter(socket);
    const reader = new FrameReader();
    let volumeId: string | undefined;
    let opened: Promise<Replica> | undefined;
    const reply = (status: number, id: number, payload?: Buffer) => {
      if (!socket.destroyed) send(encodeReply(status, id, payload));
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
        // Answered here, ahead of any replica I/O: the engine tells a slow disk from a frozen node by it.
        if (request.op === Op.Ping) {
          reply(Status.Ok, request.id);
          continue;
        }
        if (request.op === Op.Create || request.op === Op.Destroy) {
          this.manage(request, peer).then(
            (answer) => reply(Status.Ok, request.id, answer),
            (err) => reply(statusOf(err), request.id, Buffer.from(String((err as Error).message))),
          );
          continue;
        }
        if (request.op === Op.Open) {
          if (volumeId) {
            reply(Status.BadRequest, request.id, Buffer.from("this connection already opened a volume"));
            continue;
          }
          volumeId = parseVolumeId(request.payload);
          const id = volumeId;
          opened = this.options.openReplica(id);
          opened.then(
            (r) =>
              reply(
                Status.Ok,
                request.id,
                Buffer.from(JSON.stringify({ size: r.size, blockSize: r.blockSize, epoch: r.epoch })),
              ),
            (err) => {
              volumeId = undefined;
              opened = undefined;
              reply(Status.NotFound, request.id, Buffer.from(String((err as Error).message)));
            },
          );
          continue;
        }
        if (!opened) {
          reply(Status.BadRequest, request.id, Buffer.from("open a volume first"));
          continue;
        }
        opened
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
      if (opened && volumeId) this.options.closeReplica(volumeId);
    });
  }

  /** Creates or destroys a replica on this node: the placement decisions of an engine on another node. */
  private async manage(r: Request, peer: string): Promise<Buffer | undefined> {
    const spec = parseReplicaSpec(r.payload);
    if (r.op === Op.Destroy) {
      await this.options.destroyReplica(spec.volumeId);
      this.options.logger.info({ peer, volume: spec.volumeId }, "replication: replica destroyed");
      return undefined;
    }
    const { pool } = await this.options.createReplica(spec);
    this.options.logger.info({ peer, volume: spec.volumeId, pool }, "replication: replica created");
    return Buffer.from(JSON.stringify({ pool }));
  }

  private async execute(replica: Replica, r: Request): Promise<Buffer | undefined> {
    if (r.op === Op.Admit) {
      await replica.admit(r.epoch);
      return undefined;
    }
    // Read-only questions an engine asks before it admits its epoch, or `volume check` asks of any replica.
    if (r.op === Op.Checksum) return Buffer.from(await replica.regionChecksum(r.offset));
    if (r.op === Op.Regions) return Buffer.from(JSON.stringify(replica.activeRegions()));
    // The replica's gate refuses any epoch but its admitted one, atomically with admission.
    switch (r.op) {
      case Op.Read:
        return replica.read(r.epoch, r.offset, r.count);
      case Op.Write:
        await replica.write(r.epoch, r.offset, r.payload);
        return undefined;
      case Op.Flush:
        await replica.flush(r.epoch);
        return undefined;
      case Op.Zero:
        await replica.writeZeroes(r.epoch, r.offset, r.count);
        return undefined;
      case Op.Grow:
        await replica.grow(r.epoch, r.offset);
        return undefined;
      default:
        throw new HoldfastError("replication.bad_op", `unknown operation ${r.op}`, { status: 400 });
    }
  }
}

const VOLUME_ID = /^[0-9a-f]{1,64}$/;

/** A Create or Destroy payload; the volume id becomes a directory name, so it must be plain hex. */
function parseReplicaSpec(payload: Buffer): ReplicaSpec {
  let parsed: Partial<ReplicaSpec>;
  try {
    parsed = JSON.parse(payload.toString()) as Partial<ReplicaSpec>;
  } catch {
    throw new HoldfastError("replication.bad_request", "payload is not JSON", { status: 400 });
  }
  const { volumeId, size = 0, blockSize = 4096 } = parsed;
  if (typeof volumeId !== "string" || !VOLUME_ID.test(volumeId)) {
    throw new HoldfastError("replication.bad_request", "volumeId must be hex", { status: 400 });
  }
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(blockSize) || blockSize <= 0) {
    throw new HoldfastError("replication.bad_request", "size and blockSize must be whole numbers", {
      status: 400,
    });
  }
  return { volumeId, size, blockSize };
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
