import { BitmapFile } from "./bitmap-file.js";

/**
 * The activity log: which regions of a replica may hold writes that are not yet known to be on every replica.
 *
 * A region is recorded durably *before* the first write into it is applied, and cleared lazily once two flushes
 * in a row found it quiet (no write into it running or begun since the flush started). After an engine crash, the regions logged on the surviving replicas are the
 * only ones where they can differ, so reconciliation compares those instead of the whole volume (DRBD's
 * activity log, kept per replica). See docs/decisions/0001-replica-layout.md.
 */
export class ActivityLog {
  private readonly active = new Set<number>();
  private readonly unsynced = new Set<number>();
  /** Writes being applied now, by region. */
  private readonly pending = new Map<number, number>();
  /** For each active region, the number of the last write that entered it (see `writes`). */
  private readonly enteredAt = new Map<number, number>();
  /** For each active region, how many flushes in a row found it quiet. */
  private readonly quiet = new Map<number, number>();
  /** Writes entered so far: a clock that tells a flush which writes began after it did. */
  private writes = 0;
  /** The clock when the latest flush began. */
  private lastFlushBegan = 0;
  private syncing: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  private constructor(
    private readonly map: BitmapFile,
    /** Bytes per region. */
    readonly regionSize: number,
  ) {
    for (const region of map.setBits()) this.active.add(region);
  }

  static async open(path: string, volumeSize: number, regionSize: number): Promise<ActivityLog> {
    return new ActivityLog(await BitmapFile.open(path, Math.ceil(volumeSize / regionSize)), regionSize);
  }

  /** Regions logged as active, in order: after a crash, the ones to reconcile. */
  regions(): number[] {
    return [...this.active].sort((a, b) => a - b);
  }

  /**
   * Records that a write into `[offset, offset+length)` begins: its regions are active until it has settled and
   * later flushes found them quiet. Returns a promise when the caller must wait for the log to become durable before
   * applying its write, or null when every region already is. Each call needs one `settle` of the same range, when
   * the write has been applied or has failed.
   */
  activate(offset: number, length: number): Promise<void> | null {
    const entered = ++this.writes;
    let wait = false;
    for (const region of this.regionsOf(offset, length)) {
      this.pending.set(region, (this.pending.get(region) ?? 0) + 1);
      this.enteredAt.set(region, entered);
      this.quiet.delete(region);
      if (!this.active.has(region)) {
        this.active.add(region);
        this.unsynced.add(region);
        this.map.set(region);
        wait = true;
      } else if (this.unsynced.has(region)) {
        wait = true;
      }
    }
    return wait ? this.sync() : null;
  }

  /** Records that the write `activate` announced for this range is done (applied or failed). */
  settle(offset: number, length: number): void {
    for (const region of this.regionsOf(offset, length)) {
      const n = (this.pending.get(region) ?? 1) - 1;
      if (n === 0) this.pending.delete(region);
      else this.pending.set(region, n);
    }
  }

  /**
   * Starts a flush: returns the callback to run once the replica's data is durable. A region counts as quiet for
   * this flush only if no write into it was running when the flush began and none entered it since the flush before
   * began: then every write it received is on disk, with a flush cycle to spare. Flushes may overlap; each judges by
   * starts, never by another flush's completion. A region quiet for two flushes in a row leaves the log (lazily: the
   * next write into it logs it again).
   */
  beginFlush(): () => Promise<void> {
    const since = this.lastFlushBegan;
    this.lastFlushBegan = this.writes;
    const busy = new Set(this.pending.keys());
    return async () => {
      for (const region of this.active) {
        if (busy.has(region) || this.unsynced.has(region) || (this.enteredAt.get(region) ?? 0) > since) {
          this.quiet.delete(region);
          continue;
        }
        const times = (this.quiet.get(region) ?? 0) + 1;
        if (times < 2) {
          this.quiet.set(region, times);
          continue;
        }
        this.active.delete(region);
        this.quiet.delete(region);
        this.enteredAt.delete(region);
        this.map.clear(region);
      }
      // Clearing need not be durable: a region logged for longer than needed only costs a compare later.
      await this.map.persist(false);
    };
  }

  /** Grows the log for a larger volume. */
  grow(volumeSize: number): void {
    this.map.grow(Math.ceil(volumeSize / this.regionSize));
  }

  /** Makes the whole log durable (part of FLUSH). */
  async persist(): Promise<void> {
    await this.sync();
  }

  async close(): Promise<void> {
    await this.sync();
    await this.map.close();
  }

  private regionsOf(offset: number, length: number): number[] {
    const first = Math.floor(offset / this.regionSize);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / this.regionSize);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  }

  // One durable write at a time; callers arriving during it share the next one.
  private sync(): Promise<void> {
    if (!this.syncing) {
      const batch = [...this.unsynced];
      this.syncing = this.map.persist(true).then(
        () => {
          for (const region of batch) this.unsynced.delete(region);
          this.syncing = null;
        },
        (err) => {
          this.syncing = null;
          throw err;
        },
      );
      return this.syncing;
    }
    if (!this.queued) {
      this.queued = this.syncing
        .catch(() => undefined)
        .then(() => {
          this.queued = null;
          return this.sync();
        });
    }
    return this.queued;
  }
}
