import type { Socket } from "node:net";

/**
 * The engine-replica wire protocol: length-prefixed binary frames over mutual TLS.
 *
 * request: u32 length | u8 op | u32 id | u64 epoch | u64 offset | u32 count | payload
 * reply:   u32 length | u8 status | u32 id | payload (read data, a JSON answer, or an error message)
 *
 * `length` counts the bytes after itself. Every data request carries the engine's epoch, so a replica can
 * refuse an engine that lost its attachment (fencing) on every single request, not only at connect.
 */
export const Op = {
  /** payload: JSON {volumeId}; answer: JSON {size, blockSize, epoch} */
  Open: 1,
  /** epoch: the engine's; raises the replica's epoch or is fenced */
  Admit: 2,
  Read: 3,
  Write: 4,
  Flush: 5,
  /** Zeroes (and may release) `count` bytes at `offset`. */
  Zero: 6,
  /** offset: the new size */
  Grow: 7,
  /** Before Open. payload: JSON {volumeId, size, blockSize}; creates the replica in a pool; answer: JSON {pool} */
  Create: 8,
  /** Before Open. payload: JSON {volumeId}; deletes the replica (the volume is gone or it was moved away) */
  Destroy: 9,
  /** answer: JSON number[], the regions in the replica's activity log. Read-only, so any epoch may ask. */
  Regions: 10,
  /** offset: a region index; answer: the region's SHA-256 in hex. Read-only, so any admitted epoch may ask. */
  Checksum: 11,
  /**
   * Answered at once by the replica's event loop, before Open and at any epoch: while its requests are outstanding
   * the engine pings to tell a replica that is busy (a long fsync) from one that froze.
   */
  Ping: 12,
} as const;

export const Status = {
  Ok: 0,
  Fenced: 1,
  Range: 2,
  Io: 3,
  NotFound: 4,
  BadRequest: 5,
  /** The peer is authenticated but may not do this to this replica (it does not hold the volume's attachment). */
  Forbidden: 6,
} as const;

export const REQUEST_HEADER = 25;
export const REPLY_HEADER = 5;
/** Frames larger than this are refused: the engine never sends more than one NBD request's payload. */
export const MAX_FRAME = 64 * 1024 * 1024;
/**
 * The window of one connection: an engine keeps at most this many requests (pings aside), and this many bytes of
 * payload plus read counts, outstanding on one connection, and queues the rest. A replica that sees more stops
 * reading from that peer until it is back under: a flood slows the peer down, not the agent, and an engine that
 * keeps to the window never has its pings left unread.
 */
export const WINDOW_REQUESTS = 256;
export const WINDOW_BYTES = 64 * 1024 * 1024;

/** The most one Read may ask for: an answer is allocated whole, so a larger count is refused, not attempted. */
export const MAX_READ = 32 * 1024 * 1024;

export interface Request {
  op: number;
  id: number;
  epoch: number;
  offset: number;
  count: number;
  payload: Buffer;
}

export function encodeRequest(r: Omit<Request, "payload">, payload?: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(4 + REQUEST_HEADER);
  header.writeUInt32BE(REQUEST_HEADER + (payload?.length ?? 0), 0);
  header.writeUInt8(r.op, 4);
  header.writeUInt32BE(r.id, 5);
  writeU64(header, r.epoch, 9);
  writeU64(header, r.offset, 17);
  header.writeUInt32BE(r.count, 25);
  return payload && payload.length > 0 ? [header, payload] : [header];
}

export function decodeRequest(frame: Buffer): Request {
  return {
    op: frame.readUInt8(0),
    id: frame.readUInt32BE(1),
    epoch: readU64(frame, 5),
    offset: readU64(frame, 13),
    count: frame.readUInt32BE(21),
    payload: frame.subarray(REQUEST_HEADER),
  };
}

// 64-bit fields as two 32-bit halves: a BigInt per field costs measurably at tens of thousands of frames a second,
// and offsets and epochs stay far below 2^53.
function writeU64(buffer: Buffer, value: number, at: number): void {
  buffer.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  buffer.writeUInt32BE(value >>> 0, at + 4);
}

function readU64(buffer: Buffer, at: number): number {
  return buffer.readUInt32BE(at) * 2 ** 32 + buffer.readUInt32BE(at + 4);
}

export function encodeReply(status: number, id: number, payload?: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(4 + REPLY_HEADER);
  header.writeUInt32BE(REPLY_HEADER + (payload?.length ?? 0), 0);
  header.writeUInt8(status, 4);
  header.writeUInt32BE(id, 5);
  return payload && payload.length > 0 ? [header, payload] : [header];
}

export function decodeReply(frame: Buffer): { status: number; id: number; payload: Buffer } {
  return { status: frame.readUInt8(0), id: frame.readUInt32BE(1), payload: frame.subarray(REPLY_HEADER) };
}

/** Cuts a byte stream into frames; throws on a frame longer than MAX_FRAME (a broken or hostile peer). */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) return frames;
      const head = this.chunks[0] as Buffer;
      const length = (head.length >= 4 ? head : Buffer.concat(this.chunks)).readUInt32BE(0);
      if (length > MAX_FRAME) throw new RangeError(`frame of ${length} bytes exceeds ${MAX_FRAME}`);
      if (this.buffered < 4 + length) return frames;
      const all = this.chunks.length === 1 ? head : Buffer.concat(this.chunks);
      frames.push(all.subarray(4, 4 + length));
      const rest = all.subarray(4 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
  }
}

/**
 * Writes frames to a socket, corked until the end of the current tick: the frames of many requests (or replies)
 * issued in one turn of the event loop leave in one TLS record and one system call, not one or two each.
 */
export function corkedWriter(socket: Socket): (parts: Buffer[]) => void {
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  return (parts) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    for (const part of parts) socket.write(part);
  };
}
