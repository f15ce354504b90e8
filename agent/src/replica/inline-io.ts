import { readSync, writeSync } from "node:fs";

/** Largest request done on the calling thread. */
const MAX_INLINE = 64 * 1024;
/** Requests must cover whole pages: a partial-page write may need a read from disk first. */
const PAGE = 4096;
/** How long the inline path of one kind stays off once too many requests were slow. */
const BACKOFF_MS = 1000;
/** Requests per window, and how many of them may be slow before the path backs off. A single slow one is more
 * often the thread losing its core mid-call on a busy host than the kernel waiting, so one is not enough. */
const WINDOW = 64;
const SLOW_PER_WINDOW = 4;

/** One kind of inline request (reads or writes) and when it last had to back off. */
class InlinePath {
  private offUntil = 0;
  private inWindow = 0;
  private slowInWindow = 0;
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
      if (++this.slowInWindow > SLOW_PER_WINDOW) {
        this.offUntil = Date.now() + BACKOFF_MS;
        this.inWindow = 0;
        this.slowInWindow = 0;
      }
    }
    if (++this.inWindow >= WINDOW) {
      this.inWindow = 0;
      this.slowInWindow = 0;
    }
  }
}

/**
 * Small page-aligned reads and writes go to the page cache from the event loop's thread.
 *
 * Handing each 4 KiB request to libuv's thread pool costs two thread wake-ups and, on this 2-core machine kind,
 * halves the IOPS (docs/decisions/0004-inline-io.md). A buffered request that the page cache can serve returns in
 * microseconds; one that has to wait (a read that misses the cache, dirty-page throttling, a journal commit)
 * holds up every other request, so when more than a few of the last 64 were slow, that kind of inline request
 * is off for a second and the thread pool takes over.
 */
export class InlineIo {
  readonly reads: InlinePath;
  readonly writes: InlinePath;

  constructor(
    private enabled = true,
    /** A read slower than this most likely missed the page cache. */
    readSlowNs = 200_000n,
    /** A write slower than this was throttled or waited for the journal. */
    writeSlowNs = 2_000_000n,
  ) {
    this.reads = new InlinePath(readSlowNs);
    this.writes = new InlinePath(writeSlowNs);
  }

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
