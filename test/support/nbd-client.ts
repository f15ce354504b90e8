import net from "node:net";

/**
 * A deliberately naive NBD client for tests that must send what real clients never do: it does the fixed
 * newstyle handshake step by step and sends raw option and request bytes. Its constants are written out
 * here rather than imported from the server, so a wrong constant there cannot hide in both.
 */

export const NBD = {
  OPT_EXPORT_NAME: 1,
  OPT_ABORT: 2,
  OPT_LIST: 3,
  OPT_GO: 7,
  OPT_STRUCTURED_REPLY: 8,
  REP_ACK: 1,
  REP_SERVER: 2,
  REP_INFO: 3,
  REP_ERR_UNSUP: 0x80000001,
  REP_ERR_INVALID: 0x80000003,
  REP_ERR_UNKNOWN: 0x80000006,
  REP_ERR_TOO_BIG: 0x80000009,
  CMD_READ: 0,
  CMD_WRITE: 1,
  CMD_DISC: 2,
  CMD_FLUSH: 3,
  CMD_TRIM: 4,
  CMD_WRITE_ZEROES: 6,
  FLAG_FUA: 1,
  FLAG_READ_ONLY: 2,
  EPERM: 1,
  EIO: 5,
  EINVAL: 22,
  ENOSPC: 28,
} as const;

const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const OPTION_REPLY_MAGIC = Buffer.from("0003e889045565a9", "hex");

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface SimpleReply {
  error: number;
  cookie: bigint;
}

export interface RequestFields {
  type: number;
  cookie: bigint;
  offset?: number;
  length?: number;
  flags?: number;
  /** Sent after the header; for a write, normally `length` bytes. */
  payload?: Buffer;
  /** Overrides the request magic, to send a bad one. */
  magic?: number;
}

export class RawNbdClient {
  /** Resolves when the server has closed the connection. */
  readonly ended: Promise<void>;
  private buffered = Buffer.alloc(0);
  private eof = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    this.ended = new Promise((resolve) => {
      socket.on("close", () => {
        this.eof = true;
        this.wake?.();
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  /** Connects and reads the greeting, checking the magic and handshake flags. Sends no client flags yet. */
  static async connect(socketPath: string): Promise<RawNbdClient> {
    const socket = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new RawNbdClient(socket);
    const greeting = await client.read(18);
    if (greeting.toString("latin1", 0, 16) !== "NBDMAGICIHAVEOPT") throw new Error("bad greeting");
    if (greeting.readUInt16BE(16) !== 3)
      throw new Error(`unexpected handshake flags ${greeting.readUInt16BE(16)}`);
    return client;
  }

  /** Connects, negotiates with NBD_OPT_GO, and returns the client in transmission with the export. */
  static async open(
    socketPath: string,
    name = "",
  ): Promise<{ client: RawNbdClient; size: number; flags: number }> {
    const client = await RawNbdClient.connect(socketPath);
    client.sendClientFlags(3);
    const { size, flags } = await client.go(name);
    return { client, size, flags };
  }

  sendClientFlags(flags: number): void {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(flags, 0);
    this.socket.write(out);
  }

  /** Sends an option header and data; `length` may lie about the data's length. */
  sendOption(option: number, data: Buffer = Buffer.alloc(0), length = data.length, magic = "IHAVEOPT"): void {
    const header = Buffer.alloc(16);
    header.write(magic, 0, "latin1");
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(length, 12);
    this.socket.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(20);
    if (!header.subarray(0, 8).equals(OPTION_REPLY_MAGIC)) throw new Error("bad option reply magic");
    const data = await this.read(header.readUInt32BE(16));
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data };
  }

  /** NBD_OPT_GO with no info requests; resolves with the export's size and transmission flags, or throws. */
  async go(name: string): Promise<{ size: number; flags: number }> {
    this.sendOption(NBD.OPT_GO, goData(name));
    let size = -1;
    let flags = -1;
    for (;;) {
      const reply = await this.readOptionReply();
      if (reply.type === NBD.REP_INFO && reply.data.readUInt16BE(0) === 0) {
        size = Number(reply.data.readBigUInt64BE(2));
        flags = reply.data.readUInt16BE(10);
      } else if (reply.type === NBD.REP_ACK) {
        return { size, flags };
      } else if (reply.type !== NBD.REP_INFO) {
        throw new Error(`NBD_OPT_GO failed with reply type 0x${reply.type.toString(16)}: ${reply.data}`);
      }
    }
  }

  sendRequest(request: RequestFields): void {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(request.magic ?? REQUEST_MAGIC, 0);
    header.writeUInt16BE(request.flags ?? 0, 4);
    header.writeUInt16BE(request.type, 6);
    header.writeBigUInt64BE(request.cookie, 8);
    header.writeBigUInt64BE(BigInt(request.offset ?? 0), 16);
    header.writeUInt32BE(request.length ?? request.payload?.length ?? 0, 24);
    this.socket.write(request.payload ? Buffer.concat([header, request.payload]) : header);
  }

  /** Reads one simple reply header (the caller reads any read payload with `read`). */
  async readReply(ms?: number): Promise<SimpleReply> {
    const header = await this.read(16, ms);
    if (header.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error("bad simple reply magic");
    return { error: header.readUInt32BE(4), cookie: header.readBigUInt64BE(8) };
  }

  /** Sends one request and reads its reply, plus `length` bytes of data for a successful read. */
  async request(request: RequestFields): Promise<SimpleReply & { data?: Buffer }> {
    this.sendRequest(request);
    const reply = await this.readReply();
    if (reply.cookie !== request.cookie)
      throw new Error(`reply for cookie ${reply.cookie}, not ${request.cookie}`);
    if (request.type === NBD.CMD_READ && reply.error === 0) {
      return { ...reply, data: await this.read(request.length ?? 0) };
    }
    return reply;
  }

  /** Exactly `n` bytes; rejects if the connection closes first or nothing more arrives within `ms`. */
  async read(n: number, ms = 5000): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.eof) throw new Error(`connection closed with ${this.buffered.length} of ${n} bytes received`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        this.wake = resolve;
        timer = setTimeout(
          () => reject(new Error(`no data for ${ms} ms, ${this.buffered.length} of ${n} bytes`)),
          ms,
        );
      }).finally(() => clearTimeout(timer));
      this.wake = undefined;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Resolves when the server has closed the connection; rejects if it is still open after `ms`. */
  async expectClosed(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`server kept the connection open for ${ms} ms`)), ms);
    });
    await Promise.race([this.ended, timeout]).finally(() => clearTimeout(timer));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** NBD_OPT_GO / NBD_OPT_INFO data asking for `name` with no information requests. */
export function goData(name: string): Buffer {
  const encoded = Buffer.from(name, "utf8");
  const data = Buffer.alloc(4 + encoded.length + 2);
  data.writeUInt32BE(encoded.length, 0);
  encoded.copy(data, 4);
  return data;
}
