import type { BlockDevice } from "../../agent/src/contracts/index.js";

/**
 * A BlockDevice held in memory, one Buffer per written 64 KiB chunk, for tests of the frontends that should
 * not depend on the replica store. Counts flushes so tests can see that an fsync reached the device.
 */
export class MemoryDevice implements BlockDevice {
  readonly blockSize = 4096;
  flushes = 0;
  private readonly chunks = new Map<number, Buffer>();
  private static readonly CHUNK = 64 * 1024;

  constructor(public size: number) {}

  /** Grows the device, as a resize does. */
  resize(size: number): void {
    this.size = size;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const out = Buffer.alloc(length);
    this.each(offset, length, (chunk, at, pos, n) => {
      const data = this.chunks.get(chunk);
      if (data) data.copy(out, pos, at, at + n);
    });
    return out;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.check(offset, data.length);
    this.each(offset, data.length, (chunk, at, pos, n) => {
      let buf = this.chunks.get(chunk);
      if (!buf) {
        buf = Buffer.alloc(MemoryDevice.CHUNK);
        this.chunks.set(chunk, buf);
      }
      data.copy(buf, at, pos, pos + n);
    });
  }

  async flush(): Promise<void> {
    this.flushes++;
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.each(offset, length, (chunk, at, _pos, n) => {
      this.chunks.get(chunk)?.fill(0, at, at + n);
    });
  }

  private check(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`range ${offset}+${length} is outside the device (${this.size} bytes)`);
    }
  }

  private each(
    offset: number,
    length: number,
    fn: (chunk: number, at: number, pos: number, n: number) => void,
  ) {
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const chunk = Math.floor(abs / MemoryDevice.CHUNK);
      const at = abs % MemoryDevice.CHUNK;
      const n = Math.min(MemoryDevice.CHUNK - at, length - pos);
      fn(chunk, at, pos, n);
      pos += n;
    }
  }
}
