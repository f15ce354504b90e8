/**
 * The bytes received on a socket and not yet parsed, kept as the chunks they arrived in. Concatenating on
 * every packet would copy each byte many times; here a read that lies inside one chunk is a view of it, and
 * only a header or payload that straddles chunks is copied, once.
 */
export class ByteQueue {
  /** Bytes held, over all chunks. */
  length = 0;
  private readonly chunks: Buffer[] = [];
  /** Bytes of `chunks[0]` already consumed. */
  private offset = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns the next `n` bytes (the caller checks `length`); may share memory with a chunk. */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (n === 0 || first === undefined) return Buffer.alloc(0);
    const end = this.offset + n;
    if (end <= first.length) {
      const out = first.subarray(this.offset, end);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    this.takeInto(out, 0);
    return out;
  }

  /** Moves as many bytes as are held, up to filling `target` from `at`, into `target`; returns how many. */
  takeInto(target: Buffer, at: number): number {
    const n = Math.min(this.length, target.length - at);
    let pos = 0;
    while (pos < n) {
      const chunk = this.chunks[0] as Buffer;
      const m = Math.min(chunk.length - this.offset, n - pos);
      chunk.copy(target, at + pos, this.offset, this.offset + m);
      pos += m;
      this.consume(m);
    }
    return n;
  }

  /** Drops up to `n` bytes without copying them; returns how many were dropped. */
  skip(n: number): number {
    const dropped = Math.min(n, this.length);
    let left = dropped;
    while (left > 0) {
      const chunk = this.chunks[0] as Buffer;
      const m = Math.min(chunk.length - this.offset, left);
      this.consume(m);
      left -= m;
    }
    return dropped;
  }

  clear(): void {
    this.chunks.length = 0;
    this.offset = 0;
    this.length = 0;
  }

  /** Advances past `n` bytes of the first chunk, which holds at least that many. */
  private consume(n: number): void {
    this.offset += n;
    this.length -= n;
    if (this.offset === (this.chunks[0] as Buffer).length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}
