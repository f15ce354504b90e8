import { readSync, writeSync } from "node:fs";

/** Largest request done on the calling thread. */
const MAX_INLINE = 64 * 1024;
/** Requests must cover whole pages: a partial-page write may need a read from disk first. */
const PAGE = 4096;
/** How long the inline path of one kind stays off after a slow request. */
const BACKOFF_MS = 1000;

/** One kind of inline request (reads or writes) and when it last had to back off. */
class InlinePath {
  private offUntil = 0;
  /** Requests that took the inline path, and how many of them were slow. */
  readonly counts = { inline: 0, slow: 0 };

  constructor(
    /** A request slower than this means the kernel had to wait (disk, throttling, journal). */
    private readonly slowNs: bigint,
  ) {}

  open(length: number, position: number): boolean {
    if (length > MAX_INLINE || length % PAGE !== 0 || position % PAGE !== 0) return false;
    return this.offUntil === 0 || Date.now() >= this.offUntil;
  }

  record(started: bigint): void {
    this.counts.inline++;
    if (process.hrtime.bigint() - started > this.slowNs) {
      this.counts.slow++;
      this.offUntil = Date.now() + BACKOFF_MS;
    }
  }
}

/**
 * Small page-aligned reads and writes go to the page cache from the event loop's thread.
 *
 * Handing each 4 KiB request to libuv's thread pool costs two thread wake-ups and, on this 2-core machine kind,
 * halves the IOPS (docs/decisions/0004-inline-io.md). A buffered request that the page cache can serve returns in
 * microseconds; one that has to wait (a read that misses the cache, dirty-page throttling, a journal commit)
 * would hold up every other request, so one slow request turns that kind of inline request off for a second and
 * the thread pool takes over.
 */
export class InlineIo {
  readonly reads = new InlinePath(200_000n);
  readonly writes = new InlinePath(2_000_000n);

  constructor(private enabled = true) {}

  /** Turns the inline paths on or off (the agent's `inlineIo` setting). */
  configure(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** Writes `data` at `position` on this thread when it is small, aligned and the path is open; else false. */
  tryWrite(fd: number, data: Buffer, position: number): boolean {
    if (!this.enabled || !this.writes.open(data.length, position)) return false;
    const started = process.hrtime.bigint();
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
    this.writes.record(started);
    return true;
  }

  /** Fills `target` from `position` on this thread when the path is open; else false. Past EOF reads zeros. */
  tryRead(fd: number, target: Buffer, position: number): boolean {
    if (!this.enabled || !this.reads.open(target.length, position)) return false;
    const started = process.hrtime.bigint();
    let done = 0;
    while (done < target.length) {
      const n = readSync(fd, target, done, target.length - done, position + done);
      if (n === 0) {
        target.fill(0, done);
        break;
      }
      done += n;
    }
    this.reads.record(started);
    return true;
  }
}

/** One policy per process: a slow request says something about the host, not about one volume. */
export const inlineIo = new InlineIo();
