import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { FencedError, VolumeId } from "../contracts/index.js";
import { ConflictError, ForbiddenError, InputError, NotFoundError } from "../errors.js";
import type { Replica } from "../replica/index.js";
import { type NodeIdentity, serialOf, serverTlsOptions, verifiedPeerNodeId } from "./cluster-ca.js";
import {
  corkedWriter,
  decodeRequest,
  encodeReply,
  FrameReader,
  MAX_READ,
  Op,
  type Request,
  Status,
  WINDOW_BYTES,
  WINDOW_REQUESTS,
} from "./wire.js";

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
  /** Who may admit, create and destroy: asked before each, with the peer's verified node id. */
  policy: ReplicaPolicy;
  logger: Logger;
  /**
   * Milliseconds a connection has to complete its TLS handshake, and then as much again to send its first request:
   * one that does neither holds a file descriptor for nothing.
   * @default 10000
   */
  handshakeTimeoutMs?: number;
  /**
   * Connections open at once (an engine holds one per volume with a replica here); past it a new one is closed at
   * once, so a flood of connections cannot take the descriptors replica I/O needs.
   * @default 4096
   */
  maxConnections?: number;
  /**
   * The revoked serials: a peer presenting one is cut at the handshake, and open connections of a serial revoked
   * later are cut when the list sees it. None: every certificate from the CA is taken.
   */
  revocations?: RevocationCheck;
  /**
   * Other streams this port carries, by the ALPN protocol a peer asks for (a shared volume's relayed NFS): each gets
   * the socket once the peer is authenticated and its certificate is known not to be revoked, and is cut like a
   * replication connection when it is revoked later. A peer that asks for no protocol speaks replication.
   * @default none
   */
  streams?: Readonly<Record<string, (socket: TLSSocket, peer: string) => void>>;
}

/** What the replication port asks of the revoked-serial list (enrollment/revocations.ts implements it). */
export interface RevocationCheck {
  /** Whether `serial` is revoked, read from the store now. */
  isRevoked(serial: string): Promise<boolean>;
  /** Whether `serial` was revoked when the list was last read. */
  has(serial: string): boolean;
  /** Calls `listener` with what was revoked since the last refresh. */
  onRevoked(listener: (revoked: Revoked) => void): void;
}

/** What a refresh of the revocation list found newly revoked. */
export interface Revoked {
  serials: Set<string>;
  /** Nodes revoked whole: their every connection goes, whichever certificate opened it. */
  nodes: Set<string>;
}

/**
 * Authorization on the replication port (docs/decisions/0010-trust-boundary.md). Authentication (a certificate from
 * the cluster CA naming the peer) says who asks; this says whether that node may. Each check resolves to allow, or
 * rejects with a FencedError (the epoch is older than the volume's) or a ForbiddenError.
 */
export interface ReplicaPolicy {
  /** Whether `peer` may admit `epoch` on this node's replica of `volumeId`: it must hold the attachment at it. */
  admit(peer: string, volumeId: string, epoch: number): Promise<void>;
  /** Whether `peer` may create a replica of `volumeId` here. */
  create(peer: string, volumeId: string): Promise<void>;
  /** Whether `peer` may destroy this node's replica of `volumeId`. */
  destroy(peer: string, volumeId: string): Promise<void>;
  /** Told once `peer` created the replica of `volumeId` here, so that it may undo that while no record lists it. */
  created(peer: string, volumeId: string): void;
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
    const handshakeTimeout = options.handshakeTimeoutMs ?? 10_000;
    const streams = Object.keys(options.streams ?? {});
    const ALPNProtocols = streams.length > 0 ? streams : undefined;
    this.server = createServer(
      { ...serverTlsOptions(options.identity), handshakeTimeout, ALPNProtocols },
      (socket) => this.admit(socket, handshakeTimeout),
    );
    options.revocations?.onRevoked(({ serials, nodes }) => {
      for (const socket of this.sockets) {
        const serial = serialOf(socket.getPeerCertificate());
        const node = verifiedPeerNodeId(socket);
        if (!serials.has(serial) && !(node !== undefined && nodes.has(node))) continue;
        options.logger.warn(
          { peer: verifiedPeerNodeId(socket), serial },
          "replication: peer's certificate revoked, disconnecting",
        );
        socket.destroy();
      }
    });
    this.server.maxConnections = options.maxConnections ?? 4096;
    // A listener here keeps Node from destroying the socket itself: a handshake that failed or ran out of time.
    this.server.on("tlsClientError", (err, socket) => {
      options.logger.warn({ err: err.message }, "replication: peer refused");
      socket.destroy();
    });
  }

  /**
   * Presents `identity` on every handshake from now on (a renewed certificate); connections already open keep the
   * session they have, so no I/O is interrupted.
   */
  setIdentity(identity: NodeIdentity): void {
    const { cert, key, ca, minVersion } = serverTlsOptions(identity);
    this.server.setSecureContext({ cert, key, ca, minVersion });
  }

  /** Serves a connection whose certificate the CA issued, once its serial is known not to be revoked. */
  private admit(socket: TLSSocket, firstRequestMs: number): void {
    const { revocations, logger } = this.options;
    if (!revocations) {
      this.route(socket, firstRequestMs);
      return;
    }
    const serial = serialOf(socket.getPeerCertificate());
    // Until it is served the socket has no data listener, so what the peer sends waits in it.
    this.sockets.add(socket);
    revocations.isRevoked(serial).then(
      (revoked) => {
        this.sockets.delete(socket);
        if (socket.destroyed) return;
        if (!revoked) {
          this.route(socket, firstRequestMs);
          return;
        }
        logger.warn(
          { peer: verifiedPeerNodeId(socket), serial },
          "replication: peer refused, its certificate is revoked",
        );
        socket.destroy();
      },
      () => socket.destroy(),
    );
  }

  /** Hands a connection that asked for another stream to its handler; the rest speak replication. */
  private route(socket: TLSSocket, firstRequestMs: number): void {
    const protocol = socket.alpnProtocol;
    const stream = protocol ? this.options.streams?.[protocol] : undefined;
    if (!stream) {
      this.serve(socket, firstRequestMs);
      return;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    stream(socket, verifiedPeerNodeId(socket) ?? "unknown");
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

  private serve(socket: TLSSocket, firstRequestMs: number): void {
    const peer = verifiedPeerNodeId(socket) ?? "unknown";
    const { logger, policy } = this.options;
    this.sockets.add(socket);
    const silent = setTimeout(() => socket.destroy(), firstRequestMs).unref();
    // Replies are small frames an engine waits on: send each at once rather than after a delayed ACK.
    socket.setNoDelay(true);
    const send = corkedWriter(socket);
    const reader = new FrameReader();
    let volumeId: string | undefined;
    let opened: Promise<Replica> | undefined;
    // The epoch this connection admitted, with the policy's leave: data requests need it, at that epoch.
    let admitted: number | undefined;
    let inflight = 0;
    let inflightBytes = 0;
    let paused = false;
    // Past the window (wire.ts) only a peer that ignores it, or does not read its answers, gets here.
    const throttle = () => {
      const over =
        inflight > WINDOW_REQUESTS ||
        inflightBytes > WINDOW_BYTES ||
        socket.writableLength > 2 * WINDOW_BYTES;
      const under =
        inflight <= WINDOW_REQUESTS / 2 &&
        inflightBytes <= WINDOW_BYTES / 2 &&
        socket.writableLength <= WINDOW_BYTES;
      if (!paused && over) {
        paused = true;
        socket.pause();
        logger.warn(
          { peer, inflight, inflightBytes },
          "replication: peer past its window, not read until it is under",
        );
      } else if (paused && under && !socket.destroyed) {
        paused = false;
        socket.resume();
        pump();
      }
    };
    socket.on("drain", throttle);
    const reply = (status: number, id: number, payload?: Buffer) => {
      if (!socket.destroyed) send(encodeReply(status, id, payload));
    };
    // The first refusal on a connection is logged, the rest counted and logged when it closes: a peer cannot flood
    // the log.
    let refusals = 0;
    const refuse = (request: Request, err: unknown) => {
      if (err instanceof ForbiddenError && refusals++ === 0) {
        logger.warn({ peer, op: request.op, volume: volumeId, reason: err.message }, "replication: refused");
      }
      // A fenced engine learns the epoch that fenced it; other errors carry their message.
      const message = err instanceof FencedError ? String(err.highest) : String((err as Error).message);
      reply(statusOf(err), request.id, Buffer.from(message));
    };
    const answer = (request: Request, bytes: number, work: () => Promise<Buffer | undefined>) => {
      inflight++;
      inflightBytes += bytes;
      throttle();
      work()
        .then(
          (data) => reply(Status.Ok, request.id, data),
          (err) => refuse(request, err),
        )
        .finally(() => {
          inflight--;
          inflightBytes -= bytes;
          throttle();
        });
    };
    // Frames read but not yet handled: a chunk may hold many, and none is started while the peer is past its window.
    let backlog: Buffer[] = [];
    let next = 0;
    const pump = () => {
      while (!paused && next < backlog.length) handle(backlog[next++] as Buffer);
      if (next === backlog.length) {
        backlog = [];
        next = 0;
      }
    };
    const handle = (frame: Buffer): void => {
      const request = decodeRequest(frame);
      // Answered here, ahead of any replica I/O: the engine tells a slow disk from a frozen node by it.
      if (request.op === Op.Ping) {
        reply(Status.Ok, request.id);
        return;
      }
      if (request.op === Op.Create || request.op === Op.Destroy) {
        answer(request, 0, () => this.manage(request, peer));
        return;
      }
      if (request.op === Op.Open) {
        if (volumeId) {
          refuse(request, badRequest("this connection already opened a volume"));
          return;
        }
        const id = parseVolumeId(request.payload);
        if (!VolumeId.safeParse(id).success) {
          refuse(request, badRequest("volumeId must be hex"));
          return;
        }
        volumeId = id;
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
        return;
      }
      const replica = opened;
      const id = volumeId;
      if (!replica || !id) {
        refuse(request, badRequest("open a volume first"));
        return;
      }
      if (request.op === Op.Read && request.count > MAX_READ) {
        refuse(request, badRequest(`a read of ${request.count} bytes exceeds ${MAX_READ}`));
        return;
      }
      if (request.op === Op.Admit) {
        const epoch = request.epoch;
        answer(request, 0, async () => {
          await policy.admit(peer, id, epoch);
          await (await replica).admit(epoch);
          admitted = epoch;
          return undefined;
        });
        return;
      }
      // Everything else (reads too: they are the volume's contents) is for the engine this connection admitted.
      if (admitted === undefined) {
        refuse(
          request,
          new ForbiddenError("replica.not_admitted", "admit an epoch on this connection first"),
        );
        return;
      }
      const bytes = request.payload.length + (request.op === Op.Read ? request.count : 0);
      answer(request, bytes, async () => this.execute(await replica, request));
    };
    socket.on("data", (chunk: Buffer) => {
      clearTimeout(silent);
      try {
        for (const frame of reader.push(chunk)) backlog.push(frame);
      } catch (err) {
        logger.warn({ peer, err: String(err) }, "replication: bad frame, disconnecting");
        socket.destroy();
        return;
      }
      pump();
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(silent);
      this.sockets.delete(socket);
      if (refusals > 1)
        logger.warn({ peer, refusals }, "replication: refused requests on a connection now closed");
      if (opened && volumeId) this.options.closeReplica(volumeId);
    });
  }

  /** Creates or destroys a replica on this node: the placement decisions of an engine on another node. */
  private async manage(r: Request, peer: string): Promise<Buffer | undefined> {
    const spec = parseReplicaSpec(r.payload);
    const { policy } = this.options;
    if (r.op === Op.Destroy) {
      await policy.destroy(peer, spec.volumeId);
      await this.options.destroyReplica(spec.volumeId);
      this.options.logger.info({ peer, volume: spec.volumeId }, "replication: replica destroyed");
      return undefined;
    }
    await policy.create(peer, spec.volumeId);
    const { pool } = await this.options.createReplica(spec);
    policy.created(peer, spec.volumeId);
    this.options.logger.info({ peer, volume: spec.volumeId, pool }, "replication: replica created");
    return Buffer.from(JSON.stringify({ pool }));
  }

  private async execute(replica: Replica, r: Request): Promise<Buffer | undefined> {
    // Read-only questions of the engine's reconcile, resync and `volume check`.
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
        throw new InputError("replication.bad_op", `unknown operation ${r.op}`);
    }
  }
}

/** A Create or Destroy payload; the volume id becomes a directory name, so it must be plain hex. */
function parseReplicaSpec(payload: Buffer): ReplicaSpec {
  let parsed: Partial<ReplicaSpec>;
  try {
    parsed = JSON.parse(payload.toString()) as Partial<ReplicaSpec>;
  } catch {
    throw badRequest("payload is not JSON");
  }
  const { volumeId, size = 0, blockSize = 4096 } = parsed;
  if (typeof volumeId !== "string" || !VolumeId.safeParse(volumeId).success) {
    throw badRequest("volumeId must be hex");
  }
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(blockSize) || blockSize <= 0) {
    throw badRequest("size and blockSize must be whole numbers");
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

function badRequest(message: string): InputError {
  return new InputError("replication.bad_request", message);
}

function statusOf(err: unknown): number {
  if (err instanceof FencedError) return Status.Fenced;
  if (err instanceof ForbiddenError) return Status.Forbidden;
  if (err instanceof RangeError) return Status.Range;
  // The request's own fault; anything else (an OperationError, a bare Error) is the replica's I/O failing.
  if (err instanceof InputError || err instanceof NotFoundError || err instanceof ConflictError)
    return Status.BadRequest;
  return Status.Io;
}
