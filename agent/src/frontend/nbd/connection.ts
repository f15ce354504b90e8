import type { Socket } from "node:net";
import type { BlockDevice } from "../../contracts/index.js";
import type { Logger } from "../log.js";
import { ByteQueue } from "./byte-queue.js";
import { answerOption, type ExportInfo } from "./handshake.js";
import {
  Cmd,
  CmdFlag,
  Errno,
  errorReply,
  greeting,
  HandshakeFlag,
  IHAVEOPT,
  OPTION_HEADER_LENGTH,
  REQUEST_HEADER_LENGTH,
  REQUEST_MAGIC,
  Reply,
  readUInt64,
  simpleReply,
  TransmissionFlag,
} from "./protocol.js";

/** What every connection of one server shares. */
export interface ExportContext {
  device: BlockDevice;
  exportName: string;
  readOnly: boolean;
  maxPayload: number;
  logger: Logger;
}

// Past either limit the connection stops reading until requests complete, so memory stays bounded whatever
// the client sends; a single request is always admitted, so a maximal write cannot stall.
const MAX_INFLIGHT_REQUESTS = 256;
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;
/** A 4096-byte export name plus NBD_OPT_GO's fields, with room to spare. */
const MAX_OPTION_LENGTH = 8192;
/** The spec says payloads up to 2^25 bytes SHOULD NOT be treated as a denial of service. */
const PORTABLE_PAYLOAD = 2 ** 25;
/** How long a closing connection waits for a client that will not read its last replies. */
const CLOSE_GRACE_MS = 5000;
const EMPTY = Buffer.alloc(0);

interface Request {
  type: number;
  flags: number;
  cookieHi: number;
  cookieLo: number;
  offset: number;
  length: number;
}

type Phase = "flags" | "options" | "transmission" | "closing";

let nextId = 1;

/**
 * One client, from greeting to close. Requests are parsed as they arrive and run concurrently against the
 * device; each reply goes out when its request completes, matched by cookie, so replies may be out of order.
 */
export class Connection {
  /** Resolves once the socket is closed and no request is still running against the device. */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private readonly id = nextId++;
  private readonly queue = new ByteQueue();
  private phase: Phase = "flags";
  private noZeroes = false;
  /** The option whose header has been read while its data is still arriving. */
  private option: { code: number; length: number } | undefined;
  /** A write whose payload is still arriving, copied into place chunk by chunk while it is hot in cache. */
  private pendingWrite: { request: Request; payload: Buffer; filled: number } | undefined;
  /** Payload bytes of a refused oversized write still to be thrown away. */
  private skipping = 0;
  private inflight = 0;
  private inflightBytes = 0;
  private paused = false;
  private corked = false;
  private socketClosed = false;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ExportContext,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.on("data", (chunk: Buffer) => {
      if (this.phase === "closing") return;
      this.queue.push(chunk);
      this.parse();
    });
    // The server allows half-open sockets, so a client that shuts its side still gets its in-flight replies.
    socket.on("end", () => this.stop("client closed its side"));
    socket.on("drain", () => this.maybeResume());
    socket.on("error", (err) => this.ctx.logger.debug({ conn: this.id, err }, "nbd: socket error"));
    socket.on("close", () => {
      this.socketClosed = true;
      this.phase = "closing";
      this.settle();
    });
    socket.write(greeting());
  }

  /** Stops reading, lets in-flight requests finish and their replies go out, then closes. */
  close(): Promise<void> {
    this.stop("server closing");
    return this.closed;
  }

  /** Handles all that can be handled now; each step returns false when it needs more bytes. */
  private parse(): void {
    let progressed = true;
    while (progressed && !this.paused) progressed = this.step();
  }

  private step(): boolean {
    switch (this.phase) {
      case "flags":
        return this.readClientFlags();
      case "options":
        return this.readOption();
      case "transmission":
        return this.readRequest();
      case "closing":
        return false;
    }
  }

  private readClientFlags(): boolean {
    if (this.queue.length < 4) return false;
    const flags = this.queue.take(4).readUInt32BE(0);
    if ((flags & ~(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)) !== 0) {
      this.violation("unknown client flags", { flags });
      return false;
    }
    this.noZeroes = (flags & HandshakeFlag.NO_ZEROES) !== 0;
    this.phase = "options";
    return true;
  }

  private readOption(): boolean {
    if (this.option === undefined) {
      if (this.queue.length < OPTION_HEADER_LENGTH) return false;
      const header = this.queue.take(OPTION_HEADER_LENGTH);
      if (!header.subarray(0, 8).equals(IHAVEOPT)) {
        this.violation("bad option magic");
        return false;
      }
      const code = header.readUInt32BE(8);
      const length = header.readUInt32BE(12);
      if (length > MAX_OPTION_LENGTH) {
        // Reading the data would mean buffering whatever the client claims; refuse and hang up instead.
        this.socket.write(errorReply(code, Reply.ERR_TOO_BIG, `option data of ${length} bytes is too long`));
        this.violation("oversized option", { option: code, length });
        return false;
      }
      this.option = { code, length };
    }
    if (this.queue.length < this.option.length) return false;
    const { code, length } = this.option;
    this.option = undefined;
    const outcome = answerOption(this.exportInfo(), code, this.queue.take(length), this.noZeroes);
    for (const reply of outcome.replies) this.socket.write(reply);
    if (outcome.next === "close") this.stop("negotiation ended", { option: code });
    else this.phase = outcome.next;
    return outcome.next !== "close";
  }

  private exportInfo(): ExportInfo {
    const { device, exportName, readOnly, maxPayload } = this.ctx;
    let transmissionFlags = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH;
    // One device behind every connection, and its flush covers every acknowledged write: multi-conn is safe.
    transmissionFlags |= TransmissionFlag.CAN_MULTI_CONN;
    transmissionFlags |= readOnly
      ? TransmissionFlag.READ_ONLY
      : TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES;
    return {
      name: exportName,
      size: device.size,
      transmissionFlags,
      // A BlockDevice takes any byte range, so clients need not align; aligned I/O avoids read-modify-write.
      minimumBlock: 1,
      preferredBlock: Math.max(512, device.blockSize),
      maxPayload,
    };
  }

  private readRequest(): boolean {
    if (this.skipping > 0) {
      this.skipping -= this.queue.skip(this.skipping);
      return this.skipping === 0;
    }
    const pending = this.pendingWrite;
    if (pending !== undefined) {
      pending.filled += this.queue.takeInto(pending.payload, pending.filled);
      if (pending.filled < pending.payload.length) return false;
      this.pendingWrite = undefined;
      this.start(pending.request, pending.payload);
      return true;
    }
    if (this.queue.length < REQUEST_HEADER_LENGTH) return false;
    const header = this.queue.take(REQUEST_HEADER_LENGTH);
    if (header.readUInt32BE(0) !== REQUEST_MAGIC) {
      this.violation("bad request magic", { magic: header.readUInt32BE(0) });
      return false;
    }
    const request: Request = {
      flags: header.readUInt16BE(4),
      type: header.readUInt16BE(6),
      cookieHi: header.readUInt32BE(8),
      cookieLo: header.readUInt32BE(12),
      offset: readUInt64(header, 16),
      length: header.readUInt32BE(24),
    };
    if (request.type === Cmd.DISC) {
      this.stop("client disconnected");
      return false;
    }
    if (request.type !== Cmd.WRITE) {
      this.start(request, EMPTY);
      return true;
    }
    if (request.length <= this.ctx.maxPayload) {
      // Even a write that will be refused has its payload read first, to stay in step with the stream. A
      // payload already received is taken as is (a view, when it lies in one chunk).
      if (this.queue.length >= request.length) this.start(request, this.queue.take(request.length));
      else this.pendingWrite = { request, payload: Buffer.allocUnsafe(request.length), filled: 0 };
      return true;
    }
    // The client broke a MUST. Throwing the payload away costs no memory, so do that (answering EINVAL) for
    // lengths the spec says are not an attack; beyond that, hang up rather than read gigabytes to discard.
    if (request.length > Math.max(this.ctx.maxPayload, PORTABLE_PAYLOAD)) {
      this.violation("oversized write", { length: request.length });
      return false;
    }
    this.reply(request, Errno.EINVAL);
    this.skipping = request.length;
    return true;
  }

  private start(request: Request, payload: Buffer): void {
    const error = this.check(request);
    if (error !== 0) {
      this.ctx.logger.debug({ conn: this.id, ...request, error }, "nbd: request refused");
      this.reply(request, error);
      return;
    }
    void this.run(request, payload);
  }

  /** The spec's recommended errors for requests the device must never see. */
  private check({ type, flags, offset, length }: Request): number {
    const allowedFlags = CmdFlag.FUA | (type === Cmd.WRITE_ZEROES ? CmdFlag.NO_HOLE : 0);
    if ((flags & ~allowedFlags) !== 0) return Errno.EINVAL;
    const pastEnd = offset + length > this.ctx.device.size;
    switch (type) {
      case Cmd.READ:
        return length > this.ctx.maxPayload || pastEnd ? Errno.EINVAL : 0;
      case Cmd.WRITE:
      case Cmd.WRITE_ZEROES:
        if (this.ctx.readOnly) return Errno.EPERM;
        return pastEnd ? Errno.ENOSPC : 0;
      case Cmd.TRIM:
        if (this.ctx.readOnly) return Errno.EPERM;
        return pastEnd ? Errno.EINVAL : 0;
      case Cmd.FLUSH:
        return 0;
      default:
        return Errno.EINVAL;
    }
  }

  private async run(request: Request, payload: Buffer): Promise<void> {
    const bytes = request.type === Cmd.READ ? request.length : payload.length;
    this.inflight++;
    this.inflightBytes += bytes;
    this.maybePause();
    let error = 0;
    let data: Buffer | undefined;
    try {
      data = await this.execute(request, payload);
    } catch (err) {
      error = Errno.EIO;
      const { type, offset, length } = request;
      this.ctx.logger.error({ conn: this.id, err, type, offset, length }, "nbd: device request failed");
    }
    this.reply(request, error, data);
    this.inflight--;
    this.inflightBytes -= bytes;
    if (this.phase === "closing") this.settle();
    else this.maybeResume();
  }

  private async execute(request: Request, payload: Buffer): Promise<Buffer | undefined> {
    const { device } = this.ctx;
    const { type, offset, length } = request;
    switch (type) {
      case Cmd.READ: {
        const data = await device.read(offset, length);
        // A short buffer would desynchronise the client's stream; fail the request instead.
        if (data.length !== length) throw new Error(`device returned ${data.length} of ${length} bytes`);
        return data;
      }
      case Cmd.FLUSH:
        await device.flush();
        return undefined;
      case Cmd.WRITE:
        await device.write(offset, payload);
        break;
      case Cmd.TRIM:
        await device.trim(offset, length);
        break;
      case Cmd.WRITE_ZEROES:
        // NO_HOLE is accepted but not distinguished: the device decides allocation for every write alike.
        await device.writeZeroes(offset, length);
        break;
    }
    if ((request.flags & CmdFlag.FUA) !== 0) await device.flush();
    return undefined;
  }

  /** Queues a simple reply; replies queued in the same event-loop turn leave in one writev. */
  private reply(request: Request, error: number, data?: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(simpleReply(error, request.cookieHi, request.cookieLo));
    if (data !== undefined && data.length > 0) this.socket.write(data);
  }

  private maybePause(): void {
    if (this.paused || !this.overloaded()) return;
    this.paused = true;
    this.socket.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.overloaded() || this.phase === "closing") return;
    this.paused = false;
    this.socket.resume();
    this.parse();
  }

  /** Replies the client has not yet read count too, so a client that only sends cannot fill memory. */
  private overloaded(): boolean {
    return (
      this.inflight >= MAX_INFLIGHT_REQUESTS ||
      this.inflightBytes + this.socket.writableLength >= MAX_INFLIGHT_BYTES
    );
  }

  private violation(reason: string, details: object = {}): void {
    this.ctx.logger.warn({ conn: this.id, ...details }, `nbd: protocol violation (${reason}), disconnecting`);
    this.stop(reason);
  }

  private stop(reason: string, details: object = {}): void {
    if (this.phase === "closing") return;
    this.ctx.logger.debug({ conn: this.id, ...details }, `nbd: closing (${reason})`);
    this.phase = "closing";
    this.queue.clear();
    this.socket.pause();
    this.settle();
  }

  /** Once nothing is in flight: flush the last replies and close, or, if already closed, report it. */
  private settle(): void {
    if (this.inflight > 0) return;
    if (this.socketClosed) {
      this.resolveClosed();
      return;
    }
    if (this.socket.writableEnded) return;
    this.socket.end(() => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}
