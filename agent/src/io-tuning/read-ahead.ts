/** A range read ahead of the reader: in flight (`pending`) or held (`data`). */
interface Window {
  start: number;
  end: number;
  /** Resolves to the bytes, or to undefined when they must not be used (a write overlapped, or the read failed). */
  pending?: Promise<Buffer | undefined>;
  data?: Buffer;
  /** A write, trim or zeroing overlapping it started while it was in flight, or the cache was dropped. */
  stale: boolean;
}

/** A write, trim or zeroing the wrapped device has not answered yet. */
interface Mutation {
  start: number;
  end: number;
}

export interface ReadAheadOptions {
  /** Reads `length` bytes at `offset` from the wrapped device (through the node's I/O shares). */
  read: (offset: number, length: number) => Promise<Buffer>;
  /** The wrapped device's size now (it grows online). */
  size: () => number;
  /**
   * How far ahead of a sequential reader bytes are kept in flight or held.
   * @default 1 MiB
   */
  aheadBytes?: number;
  /**
   * Bytes one prefetch reads. Several run side by side to cover `aheadBytes`: one large read would make every reader
   * in its range wait for all of it, and the replica serves reads one at a time per request.
   * @default 256 KiB
   */
  windowBytes?: number;
}

/** `on`: read ahead whenever a read follows the previous one. */
export type ReadAheadMode = "off" | "on";

/**
 * Sequential read-ahead over a BlockDevice. A read that starts where the previous one ended, or that a window holds,
 * keeps the next `aheadBytes` in flight or held, in windows of `windowBytes`; reads inside a window are served from
 * it, so a streaming reader finds its bytes in memory. Memory: at most `aheadBytes` plus two windows per volume.
 *
 * It never returns bytes older than an acknowledged write. Every write, trim or zeroing calls `mutating` before it
 * reaches the device and `mutated` after its answer: a held window it overlaps is dropped at once, an in-flight one is
 * marked stale and its bytes are thrown away on arrival (its waiting readers go to the device), and no prefetch starts
 * over a mutation still in flight. So a window's bytes were read while no overlapping mutation was in flight, and none
 * has started since: a read served from it sees every write acknowledged before the read was issued.
 */
export class ReadAhead {
  mode: ReadAheadMode = "off";
  /** Reads served from memory, and prefetches issued (for metrics and tests). */
  hits = 0;
  prefetches = 0;
  private readonly aheadBytes: number;
  private readonly windowBytes: number;
  private readonly maxWindows: number;
  /** In insertion order: the oldest held window is the one evicted. */
  private readonly windows = new Set<Window>();
  private readonly mutations = new Set<Mutation>();
  private lastEnd = -1;

  constructor(private readonly options: ReadAheadOptions) {
    this.aheadBytes = options.aheadBytes ?? 1024 * 1024;
    this.windowBytes = Math.min(options.windowBytes ?? 256 * 1024, this.aheadBytes);
    this.maxWindows = Math.ceil(this.aheadBytes / this.windowBytes) + 2;
  }

  /** Serves a read from a window when one holds it, else from the device; starts the prefetches it calls for. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = offset + length;
    const sequential = this.observe(offset, end);
    const window = this.covering(offset, end);
    if (this.mode === "on" && (window || sequential)) this.extend(end);
    if (window) {
      const data = window.data ?? (await window.pending);
      if (data) {
        this.hits++;
        return Buffer.from(data.subarray(offset - window.start, end - window.start));
      }
    }
    return this.options.read(offset, length);
  }

  /** A write, trim or zeroing of the range is about to reach the device. Returns the handle for `mutated`. */
  mutating(offset: number, length: number): Mutation {
    const mutation = { start: offset, end: offset + length };
    this.mutations.add(mutation);
    for (const window of this.windows) if (overlaps(window, mutation)) this.discard(window);
    return mutation;
  }

  /** The device answered the mutation (or failed it). */
  mutated(mutation: Mutation): void {
    this.mutations.delete(mutation);
  }

  /** Drops every window, held or in flight (a profile change): readers waiting on one go to the device. */
  clear(): void {
    for (const window of this.windows) this.discard(window);
    this.lastEnd = -1;
  }

  /** Bytes held or in flight now: at most `aheadBytes` plus two windows. */
  get bytes(): number {
    let total = 0;
    for (const w of this.windows) total += w.end - w.start;
    return total;
  }

  /** Whether the read follows the previous one. */
  private observe(offset: number, end: number): boolean {
    const sequential = offset === this.lastEnd;
    this.lastEnd = end;
    return sequential;
  }

  /** The window holding all of `[offset, end)`; partial overlaps go to the device rather than being stitched. */
  private covering(offset: number, end: number): Window | undefined {
    for (const window of this.windows) if (window.start <= offset && end <= window.end) return window;
    return undefined;
  }

  /** Keeps `[from, from + aheadBytes)` covered by windows, held or in flight, as far as it can. */
  private extend(from: number): void {
    let start = from;
    while (start < from + this.aheadBytes) {
      const window = this.covering(start, start + 1) ?? this.prefetch(start);
      if (!window) return;
      start = window.end;
    }
  }

  /** Starts reading the window at `start`, unless one overlaps it, a mutation does, or memory is taken. */
  private prefetch(start: number): Window | undefined {
    const end = Math.min(start + this.windowBytes, this.options.size());
    if (start >= end) return undefined;
    const range = { start, end };
    for (const window of this.windows) if (overlaps(window, range)) return undefined;
    for (const mutation of this.mutations) if (overlaps(mutation, range)) return undefined;
    if (this.windows.size >= this.maxWindows) {
      const [oldest] = this.windows;
      // A window in flight is never evicted: its readers would then miss the mutations that make it stale.
      if (!oldest?.data) return undefined;
      this.windows.delete(oldest);
    }
    const window: Window = { start, end, stale: false };
    this.prefetches++;
    window.pending = this.options.read(start, end - start).then(
      (data) => {
        window.pending = undefined;
        if (window.stale) return undefined;
        window.data = data;
        return data;
      },
      () => {
        this.discard(window);
        return undefined;
      },
    );
    this.windows.add(window);
    return window;
  }

  private discard(window: Window): void {
    window.stale = true;
    window.data = undefined;
    this.windows.delete(window);
  }
}

function overlaps(a: { start: number; end: number }, b: { start: number; end: number }): boolean {
  return a.start < b.end && b.start < a.end;
}
