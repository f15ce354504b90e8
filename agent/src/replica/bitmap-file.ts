import { closeFile, openFile, readAt, syncData, writeAt } from "./file-io.js";

/**
 * A bitmap kept in memory and mirrored to a file, one bit per unit (a cluster, a region). Changed bytes are
 * remembered and written back by `persist()`, so a bit set on the data path costs nothing until a flush.
 * The file is sparse: a bitmap for a 1 TiB volume costs nothing on disk until bits are set.
 */
export class BitmapFile {
  private bits: Uint8Array;
  private readonly dirtyBytes = new Set<number>();

  private constructor(
    private readonly fd: number,
    bits: Uint8Array,
  ) {
    this.bits = bits;
  }

  /** Opens (or creates) the bitmap file for `count` bits. */
  static async open(path: string, count: number): Promise<BitmapFile> {
    const fd = await openFile(path, "a+");
    await closeFile(fd);
    const rw = await openFile(path, "r+");
    const bytes = Buffer.alloc(Math.ceil(count / 8));
    await readAt(rw, bytes, 0);
    return new BitmapFile(rw, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  /** Number of bits this map holds. */
  get count(): number {
    return this.bits.length * 8;
  }

  test(bit: number): boolean {
    return ((this.bits[bit >> 3] ?? 0) & (1 << (bit & 7))) !== 0;
  }

  set(bit: number): void {
    const byte = bit >> 3;
    const old = this.bits[byte] ?? 0;
    const next = old | (1 << (bit & 7));
    if (next !== old) {
      this.bits[byte] = next;
      this.dirtyBytes.add(byte);
    }
  }

  clear(bit: number): void {
    const byte = bit >> 3;
    const old = this.bits[byte] ?? 0;
    const next = old & ~(1 << (bit & 7));
    if (next !== old) {
      this.bits[byte] = next;
      this.dirtyBytes.add(byte);
    }
  }

  /** Every set bit, in order. */
  *setBits(): Generator<number> {
    for (let byte = 0; byte < this.bits.length; byte++) {
      const value = this.bits[byte] ?? 0;
      if (value === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (value & (1 << bit)) yield byte * 8 + bit;
    }
  }

  /** Grows the map to hold `count` bits; new bits are clear (the file grows when they are first persisted). */
  grow(count: number): void {
    const length = Math.ceil(count / 8);
    if (length <= this.bits.length) return;
    const next = new Uint8Array(length);
    next.set(this.bits);
    this.bits = next;
  }

  /** Writes the changed bytes back, in runs, and optionally makes them durable. */
  async persist(durable: boolean): Promise<void> {
    if (this.dirtyBytes.size > 0) {
      const bytes = [...this.dirtyBytes].sort((a, b) => a - b);
      this.dirtyBytes.clear();
      let start = bytes[0] as number;
      let end = start;
      for (const byte of bytes.slice(1)) {
        if (byte <= end + 64) {
          end = byte;
          continue;
        }
        await this.writeRun(start, end);
        start = byte;
        end = byte;
      }
      await this.writeRun(start, end);
    }
    if (durable) await syncData(this.fd);
  }

  async close(): Promise<void> {
    await closeFile(this.fd);
  }

  private writeRun(start: number, end: number): Promise<void> {
    const run = Buffer.from(this.bits.buffer, this.bits.byteOffset + start, end - start + 1);
    return writeAt(this.fd, Buffer.from(run), start);
  }
}
