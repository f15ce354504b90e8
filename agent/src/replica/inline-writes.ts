import { writeSync } from "node:fs";

/** Largest write done on the calling thread. */
const MAX_INLINE = 64 * 1024;
/** Writes must cover whole pages: a partial page may need a read from disk first, which would block. */
const PAGE = 4096;
/** An inline write slower than this means the kernel is throttling or waiting on a journal: back off. */
const SLOW_NS = 2_000_000n;
/** How long inline writes stay off after a slow one. */
const BACKOFF_MS = 1000;

/**
 * Small page-aligned buffered writes go straight into the page cache from the event loop's thread.
 *
 * Handing each 4 KiB write to libuv's thread pool costs two thread wake-ups and, on this 2-core machine kind,
 * halves the IOPS (bench/README.md, docs/decisions/0004-inline-writes.md). A buffered write of whole pages
 * normally returns in microseconds; when one does not (dirty-page throttling, a journal commit), every other
 * request would wait behind it, so one slow write turns inline writes off for a second.
 * Reads stay on the thread pool: a page-cache miss waits for the disk.
 */
export class InlineWrites {
  private offUntil = 0;
  /** Writes that took the inline path, and inline writes that were slow: exported as metrics later. */
  readonly counts = { inline: 0, slow: 0 };

  constructor(private enabled = true) {}

  /** Turns the inline path on or off (the agent's `inlineWrites` setting). */
  configure(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** Writes `data` at `position` on this thread if it is small, aligned and the path is on; false otherwise. */
  tryWrite(fd: number, data: Buffer, position: number): boolean {
    if (!this.enabled || data.length > MAX_INLINE || position % PAGE !== 0 || data.length % PAGE !== 0)
      return false;
    if (this.offUntil !== 0 && Date.now() < this.offUntil) return false;
    const started = process.hrtime.bigint();
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
    this.counts.inline++;
    if (process.hrtime.bigint() - started > SLOW_NS) {
      this.counts.slow++;
      this.offUntil = Date.now() + BACKOFF_MS;
    }
    return true;
  }
}

/** One policy per process: a slow write says something about the host, not about one volume. */
export const inlineWrites = new InlineWrites();
