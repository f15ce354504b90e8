import { BitmapFile } from "./bitmap-file.js";

/**
 * The activity log: which regions of a replica may hold writes that are not yet known to be on every replica.
 *
 * A region is recorded durably *before* the first write into it is applied, and cleared lazily once it has
 * been idle across two flushes. After an engine crash, the regions logged on the surviving replicas are the
 * only ones where they can differ, so reconciliation compares those instead of the whole volume (DRBD's
 * activity log, kept per replica). See docs/decisions/0001-replica-layout.md.
 */
export class ActivityLog {
  private readonly active = new Set<number>();
  private readonly unsynced = new Set<number>();
  private readonly idleOnce = new Set<number>();
  private touched = new Set<number>();
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
   * Records the regions `[offset, offset+length)` touches as active. Returns a promise when the caller must
   * wait for the log to become durable before applying its write, or null when every region already is.
   */
  activate(offset: number, length: number): Promise<void> | null {
    const first = Math.floor(offset / this.regionSize);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / this.regionSize);
    let wait = false;
    for (let region = first; region <= last; region++) {
      this.touched.add(region);
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

  /** Starts a flush cycle: returns the callback to run once the replica's data is durable. */
  beginFlush(): () => Promise<void> {
    const touched = this.touched;
    this.touched = new Set();
    return async () => {
      for (const region of this.active) {
        if (touched.has(region) || this.touched.has(region) || this.unsynced.has(region)) {
          this.idleOnce.delete(region);
        } else if (this.idleOnce.has(region)) {
          this.idleOnce.delete(region);
          this.active.delete(region);
          this.map.clear(region);
        } else {
          this.idleOnce.add(region);
        }
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
