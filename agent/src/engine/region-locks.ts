import { REGION_SIZE } from "../contracts/index.js";

/** The regions `[offset, offset+length)` touches. */
export function regionsOf(offset: number, length: number): number[] {
  const first = Math.floor(offset / REGION_SIZE);
  const last = Math.floor((offset + Math.max(length, 1) - 1) / REGION_SIZE);
  const out: number[] = [];
  for (let r = first; r <= last; r++) out.push(r);
  return out;
}

/**
 * Keeps a region copy (resync, reconcile, check) and the writes into that region from overlapping: a copy waits
 * for the writes already in the region, and writes that arrive meanwhile wait for the copy. Otherwise a copy could
 * read old data, a write land on both replicas, and the copy then put the old data back on one of them.
 *
 * Outside of a copy, a write pays for a per-region count and nothing else.
 */
export class RegionLocks {
  private copies = 0;
  private readonly locked = new Map<number, Promise<void>>();
  private readonly inRegion = new Map<number, number>();
  private readonly drained: Array<() => void> = [];

  /**
   * Counts a write into its regions. Returns a promise to wait for when a copy holds one of them (the write is
   * counted in once it is released), or undefined, without a turn of the event loop, when none does.
   */
  enter(regions: readonly number[]): Promise<void> | undefined {
    if (this.copies > 0 && regions.some((r) => this.locked.has(r))) return this.enterAfterCopies(regions);
    this.count(regions);
    return undefined;
  }

  private async enterAfterCopies(regions: readonly number[]): Promise<void> {
    for (;;) {
      const busy = regions.map((r) => this.locked.get(r)).find((p) => p !== undefined);
      if (!busy) break;
      await busy;
    }
    this.count(regions);
  }

  private count(regions: readonly number[]): void {
    for (const r of regions) this.inRegion.set(r, (this.inRegion.get(r) ?? 0) + 1);
  }

  /** Counts a write out. */
  leave(regions: readonly number[]): void {
    for (const r of regions) {
      const n = (this.inRegion.get(r) ?? 1) - 1;
      if (n === 0) this.inRegion.delete(r);
      else this.inRegion.set(r, n);
    }
    if (this.drained.length > 0) for (const wake of this.drained.splice(0)) wake();
  }

  /** Runs `fn` with `region` to itself: after the writes in it finish, before any new one starts. */
  async exclusive<T>(region: number, fn: () => Promise<T>): Promise<T> {
    while (this.locked.has(region)) await this.locked.get(region);
    let release = () => {};
    this.locked.set(
      region,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    this.copies++;
    try {
      while ((this.inRegion.get(region) ?? 0) > 0) await new Promise<void>((r) => this.drained.push(r));
      return await fn();
    } finally {
      this.copies--;
      this.locked.delete(region);
      release();
    }
  }
}
