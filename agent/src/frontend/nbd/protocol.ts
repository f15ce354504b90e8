/**
 * NBD wire constants and the encoders for what the server sends, as doc/proto.md in NetworkBlockDevice/nbd
 * names them. Only the subset Holdfast speaks is here: fixed newstyle negotiation, simple replies.
 */

/** The server's greeting: "NBDMAGIC", "IHAVEOPT", then the 16-bit handshake flags. */
const NBDMAGIC = Buffer.from("NBDMAGIC", "latin1");
/** Starts the greeting and every option the client sends. */
export const IHAVEOPT = Buffer.from("IHAVEOPT", "latin1");
/** The 64-bit option reply magic 0x0003e889045565a9, as two 32-bit halves. */
const OPTION_REPLY_MAGIC_HI = 0x0003e889;
const OPTION_REPLY_MAGIC_LO = 0x045565a9;
export const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

export const REQUEST_HEADER_LENGTH = 28;
export const OPTION_HEADER_LENGTH = 16;

/** Handshake flags (server) and client flags share these two bits. */
export const HandshakeFlag = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;

export const Option = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, INFO: 6, GO: 7 } as const;

export const Reply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_TOO_BIG: 0x80000009,
} as const;

const Info = { EXPORT: 0, BLOCK_SIZE: 3 } as const;

export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  CAN_MULTI_CONN: 1 << 8,
} as const;

export const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, WRITE_ZEROES: 6 } as const;

export const CmdFlag = { FUA: 1 << 0, NO_HOLE: 1 << 1 } as const;

/** The spec's error numbers (fixed values, not the host's errno). */
export const Errno = { EPERM: 1, EIO: 5, EINVAL: 22, ENOSPC: 28 } as const;

export function greeting(): Buffer {
  const out = Buffer.alloc(18);
  NBDMAGIC.copy(out, 0);
  IHAVEOPT.copy(out, 8);
  out.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
  return out;
}

/** One reply to an option; `data` may be an error message for error types. */
export function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(20 + data.length);
  out.writeUInt32BE(OPTION_REPLY_MAGIC_HI, 0);
  out.writeUInt32BE(OPTION_REPLY_MAGIC_LO, 4);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(type, 12);
  out.writeUInt32BE(data.length, 16);
  data.copy(out, 20);
  return out;
}

export function errorReply(option: number, type: number, message: string): Buffer {
  return optionReply(option, type, Buffer.from(message, "utf8"));
}

/** NBD_REP_SERVER: one export in the answer to NBD_OPT_LIST. */
export function serverReply(option: number, name: string): Buffer {
  const encoded = Buffer.from(name, "utf8");
  const data = Buffer.alloc(4 + encoded.length);
  data.writeUInt32BE(encoded.length, 0);
  encoded.copy(data, 4);
  return optionReply(option, Reply.SERVER, data);
}

export function infoExportReply(option: number, size: number, flags: number): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt16BE(Info.EXPORT, 0);
  writeUInt64(data, size, 2);
  data.writeUInt16BE(flags, 10);
  return optionReply(option, Reply.INFO, data);
}

export function infoBlockSizeReply(
  option: number,
  minimum: number,
  preferred: number,
  maximum: number,
): Buffer {
  const data = Buffer.alloc(14);
  data.writeUInt16BE(Info.BLOCK_SIZE, 0);
  data.writeUInt32BE(minimum, 2);
  data.writeUInt32BE(preferred, 6);
  data.writeUInt32BE(maximum, 10);
  return optionReply(option, Reply.INFO, data);
}

/** The answer to NBD_OPT_EXPORT_NAME: no reply header, and 124 bytes of padding unless NO_ZEROES. */
export function exportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const out = Buffer.alloc(noZeroes ? 10 : 134);
  writeUInt64(out, size, 0);
  out.writeUInt16BE(flags, 8);
  return out;
}

export function simpleReply(error: number, cookieHi: number, cookieLo: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error, 4);
  out.writeUInt32BE(cookieHi, 8);
  out.writeUInt32BE(cookieLo, 12);
  return out;
}

/** Reads a 64-bit field as a Number: exact below 2^53, and anything above is far beyond any device anyway. */
export function readUInt64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 2 ** 32 + buf.readUInt32BE(at + 4);
}

function writeUInt64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  buf.writeUInt32BE(value % 2 ** 32, at + 4);
}
