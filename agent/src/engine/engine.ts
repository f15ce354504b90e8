import {
  type BlockDevice,
  FencedError,
  REGION_SIZE,
  type ReplicaTarget,
  type ServingLease,
} from "../contracts/index.js";
import { OperationError, UnavailableError } from "../errors.js";
import { RegionLocks, regionsOf } from "./region-locks.js";
import { WriteOrder } from "./write-order.js";

/** Regions a resync copies at once. */
const RESYNC_PARALLEL = 4;

export interface EngineOptions {
  /** The volume's id, for errors and logs. */
  volumeId: string;
  /** The attachment's epoch, from the metadata store: strictly higher than any earlier attachment's. */
  epoch: number;
  /** The in-sync replicas; the first is read from (the local one, when there is one). */
  replicas: ReplicaTarget[];
  /**
   * Takes failed replicas out of the in-sync set (in the metadata store). A write that a replica missed is
   * acknowledged only after this resolves; if it rejects, the write fails instead.
   * @default - none: any replica failure fails the request
   */
  onReplicaFailed?: (failed: ReplicaTarget[], cause: unknown) => Promise<void>;
  /**
   * When given, no request reaches a replica while the lease is not held (self-fencing): requests wait, unanswered,
   * until it is regained, and fail if it never will be.
   * @default - none: a single-node install, whose volumes no other node can take over
   */
  lease?: ServingLease;
}

/** How far a resync has come, in regions. */
export interface ResyncProgress {
  done: number;
  total: number;
  /** Regions whose bytes differed and were copied. */
  copied: number;
}

/**
 * How a resync brings a replica up to date: `incremental` compares the regions this engine saw it miss plus those in
 * its activity log; `compare` compares every region; `rebuild` copies every region without trusting its checksums.
 */
export type ResyncPlan = "incremental" | "compare" | "rebuild";

/** A replica catching up: it receives every write while regions are copied to it, but is not read from. */
interface CatchingUp {
  target: ReplicaTarget;
  failure?: unknown;
}

/**
 * The per-volume I/O engine on the attached node: serves the volume as one BlockDevice, sends every write to
 * every in-sync replica (and to replicas catching up) and acknowledges it when all in-sync ones have, and makes
 * FLUSH durable on all of them. It also copies regions between replicas (reconcile, resync, check) without
 * stopping I/O; see RegionLocks for why that is safe.
 */
export class Engine implements BlockDevice {
  private stopped = false;
  /** Wakes requests waiting for the lease when the engine stops. */
  private readonly halted: { promise: Promise<never>; reject: (err: unknown) => void };
  private readonly replicas: ReplicaTarget[];
  private readonly catchingUp = new Set<CatchingUp>();
  private readonly dropping = new Map<ReplicaTarget, Promise<void>>();
  /**
   * In-sync replicas that failed a request and are not yet recorded as dropped: no request goes to them, and none is
   * acknowledged until their drop is in the store (if recording it fails, the next request tries again).
   */
  private readonly failing = new Set<ReplicaTarget>();
  /**
   * For each replica this engine dropped (or is dropping): every region of every write it did not acknowledge, from
   * the first request it failed on, so its resync can copy only those. A superset: that is what makes it safe.
   */
  private readonly missed = new Map<ReplicaTarget, Set<number>>();
  /**
   * Replicas whose flush failed with an error of their own (EIO, ENOSPC), not a lost connection: Linux may have
   * marked the pages it could not write clean, so the replica's reads, checksums included, can show bytes its disk
   * does not hold, and its next flush succeeds without writing them. Only a rebuild can trust such a replica again.
   */
  private readonly untrusted = new Set<ReplicaTarget>();
  /**
   * Regions of requests that failed without a drop (on every in-sync replica, or with no onReplicaFailed) and may
   * have landed on some replicas and not others, which all stay in sync: before any request into one is served, the
   * region is copied from the primary to the rest (see settle).
   */
  private readonly suspect = new Set<number>();
  private readonly locks = new RegionLocks();
  private readonly order = new WriteOrder();

  private constructor(private readonly options: EngineOptions) {
    this.replicas = [...options.replicas];
    let reject: (err: unknown) => void = () => {};
    const promise = new Promise<never>((_, r) => {
      reject = r;
    });
    promise.catch(() => undefined);
    this.halted = { promise, reject };
  }

  /** The replicas this engine still writes to and counts on. */
  get inSync(): readonly ReplicaTarget[] {
    return this.replicas;
  }

  /**
   * Admits the engine's epoch on every replica at once before any I/O, so a stale engine is fenced from the start.
   * A replica that fails its admit (unreachable, hung past its bound) is dropped, in the store first, and the engine
   * starts with the others; a fenced one (a newer engine exists) fails the start. Then the replicas are made to agree
   * on every region an earlier engine may have left half-written (the union of their activity logs).
   */
  static async start(options: EngineOptions): Promise<Engine> {
    if (options.replicas.length === 0) {
      throw new OperationError("engine.no_replicas", `volume ${options.volumeId} has no in-sync replica`);
    }
    const admitted = await Promise.allSettled(options.replicas.map((r) => r.admit(options.epoch)));
    const refusals = admitted.flatMap((a) => (a.status === "rejected" ? [a.reason as unknown] : []));
    const fenced = refusals.find((err) => err instanceof FencedError);
    if (fenced) throw fenced;
    if (refusals.length === options.replicas.length) throw refusals[0];
    const engine = new Engine(options);
    for (const replica of options.replicas) engine.watch(replica);
    const unreachable = options.replicas.filter((_, i) => admitted[i]?.status === "rejected");
    if (unreachable.length > 0) await engine.drop(unreachable, refusals[0]);
    await engine.reconcile();
    return engine;
  }

  /**
   * After a crash: grows every replica to the largest size (a grow that reached only some), then copies each region
   * in any replica's activity log from the first replica to the others where they differ. A replica that fails on
   * the way is dropped and the pass starts again over the ones left, so it always ends complete or with one replica.
   */
  private async reconcile(): Promise<void> {
    for (;;) {
      try {
        const size = Math.max(...this.replicas.map((r) => r.size));
        await Promise.all(this.replicas.filter((r) => r.size < size).map((r) => blame(r, r.grow(size))));
        if (this.replicas.length < 2) return;
        const logged = new Set<number>();
        const logs = await Promise.all(
          this.replicas.map((r) => blame(r, Promise.resolve(r.activeRegions()))),
        );
        for (const regions of logs) for (const region of regions) logged.add(region);
        for (const region of [...logged].sort((a, b) => a - b)) {
          await this.copyRegion(this.primary, this.replicas.slice(1), region);
        }
        return;
      } catch (err) {
        if (!(err instanceof ReplicaFault) || !this.isReplicaFault(err.cause) || this.replicas.length < 2) {
          throw err instanceof ReplicaFault ? err.cause : err;
        }
        await this.drop([err.target], err.cause);
      }
    }
  }

  get size(): number {
    return this.primary.size;
  }

  get blockSize(): number {
    return this.primary.blockSize;
  }

  get epoch(): number {
    return this.options.epoch;
  }

  get regionCount(): number {
    return Math.ceil(this.size / REGION_SIZE);
  }

  /** Reads from the first in-sync replica; one that fails is dropped and the next one answers. */
  async read(offset: number, length: number): Promise<Buffer> {
    for (;;) {
      this.assertRunning();
      if (this.options.lease?.held === false) await this.leaseHeld();
      if (this.suspect.size > 0) await this.settle(regionsOf(offset, length));
      const primary = this.primary;
      try {
        return await primary.read(offset, length);
      } catch (err) {
        if (!this.isReplicaFault(err) || this.replicas.length === 1) throw err;
        await this.drop([primary], err);
      }
    }
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.ordered(offset, data.length, (r) => r.write(offset, data));
  }

  flush(): Promise<void> {
    return this.fanOut((r) => r.flush(), [], true);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.ordered(offset, length, (r) => r.trim(offset, length));
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.ordered(offset, length, (r) => r.writeZeroes(offset, length));
  }

  /** Grows every replica; the volume is only bigger once all of them are. */
  grow(size: number): Promise<void> {
    return this.fanOut((r) => r.grow(size), []);
  }

  /**
   * Flushes and stops serving; later requests fail. The replicas stay open: their owner closes them. Without its
   * lease the engine may not flush (another node may own the volume by now), so it only halts.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.options.lease?.held !== false) await this.flush();
    this.halt();
  }

  /** Stops serving at once, without a flush: a newer attachment owns the volume now. */
  halt(): void {
    this.stopped = true;
    this.halted.reject(
      new OperationError("engine.stopped", `volume ${this.options.volumeId} is detached or fenced`),
    );
  }

  /** Whether the engine stopped (detached or fenced by a newer attachment). */
  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * The regions `dropped` missed since this engine dropped it; undefined when this engine never dropped it (it was
   * out of sync before this engine started): then only a full compare is safe.
   */
  missedSince(dropped: ReplicaTarget): number[] | undefined {
    if (this.replicas.includes(dropped)) return undefined;
    const regions = this.missed.get(dropped);
    return regions ? [...regions].sort((a, b) => a - b) : undefined;
  }

  /** Stops recording what `dropped` misses and why it was dropped: it has been resynced or removed. */
  forget(dropped: ReplicaTarget): void {
    this.missed.delete(dropped);
    this.untrusted.delete(dropped);
  }

  /**
   * Brings `target` up to date while writes continue: it receives every write from now on, and regions are copied
   * to it from the first in-sync replica by the plan `dropped` allows. `dropped` is what this replica was to this
   * engine before (the target it dropped, or one whose resync failed): a flush it failed with an I/O error calls
   * for a rebuild, a missed set for an incremental resync (asked once the target receives every write, so that no
   * write falls between), nothing known for a compare of every region. Then it joins the in-sync set here, and
   * `markInSync` records that in the store: from that call on, a write it fails is acknowledged only after it has
   * been dropped again. Rejects, leaving it out, if it fails first; a flush it failed with an I/O error on the way
   * marks `dropped` (or `target`) for a rebuild next time.
   */
  async resync(
    target: ReplicaTarget,
    markInSync: () => Promise<void>,
    options: { dropped?: ReplicaTarget; onProgress?: (p: ResyncProgress) => void } = {},
  ): Promise<ResyncPlan> {
    this.assertRunning();
    const { dropped } = options;
    const plan: ResyncPlan =
      dropped && this.untrusted.has(dropped)
        ? "rebuild"
        : dropped && this.missedSince(dropped)
          ? "incremental"
          : "compare";
    const entry: CatchingUp = { target };
    this.watch(target);
    try {
      await target.admit(this.epoch);
      if (target.size < this.size) await target.grow(this.size);
      this.catchingUp.add(entry);
      const regions =
        plan === "incremental" && dropped
          ? [...new Set([...(this.missedSince(dropped) ?? []), ...(await target.activeRegions())])].sort(
              (a, b) => a - b,
            )
          : Array.from({ length: this.regionCount }, (_, i) => i);
      const progress: ResyncProgress = { done: 0, total: regions.length, copied: 0 };
      options.onProgress?.(progress);
      // A few regions at a time: each copy waits on a checksum round trip, a read and a write in turn.
      let next = 0;
      const worker = async () => {
        while (next < regions.length) {
          const region = regions[next++] as number;
          if (entry.failure) throw entry.failure;
          this.assertRunning();
          const copied = await this.copyRegion(this.primary, [target], region, plan !== "rebuild");
          if (copied.length > 0) progress.copied++;
          progress.done++;
          options.onProgress?.(progress);
        }
      };
      await Promise.all(Array.from({ length: RESYNC_PARALLEL }, worker));
      await target.flush().catch((err) => {
        this.noteFlushFailed(target, err);
        throw err;
      });
      if (entry.failure) throw entry.failure;
      this.catchingUp.delete(entry);
      this.untrusted.delete(target);
      this.replicas.push(target);
      await markInSync();
      return plan;
    } catch (err) {
      if (dropped && this.untrusted.has(target)) this.untrusted.add(dropped);
      throw err;
    } finally {
      this.catchingUp.delete(entry);
    }
  }

  /**
   * Drops an in-sync replica known to be gone (its node's lease expired, its connection broke) before any write
   * finds out: the same path as a failed write, so the store learns first. The last replica is never dropped.
   */
  async evict(target: ReplicaTarget, cause: unknown): Promise<void> {
    if (!this.replicas.includes(target) || this.replicas.length === 1) return;
    await this.drop([target], cause);
  }

  /** Stops writing to `target` (a replica being removed on purpose); the caller updates the store first. */
  remove(target: ReplicaTarget): void {
    const at = this.replicas.indexOf(target);
    if (at >= 0 && this.replicas.length > 1) this.replicas.splice(at, 1);
    this.failing.delete(target);
    for (const entry of this.catchingUp) if (entry.target === target) this.catchingUp.delete(entry);
  }

  /**
   * Compares every in-sync replica region by region (each region compared at one instant, between writes), and
   * returns the regions where they differ.
   */
  async check(onProgress?: (p: ResyncProgress) => void): Promise<number[]> {
    const differing: number[] = [];
    const progress: ResyncProgress = { done: 0, total: this.regionCount, copied: 0 };
    for (let region = 0; region < this.regionCount; region++) {
      this.assertRunning();
      const sums = await this.locks
        .exclusive(region, () => Promise.all(this.replicas.map((r) => blame(r, r.regionChecksum(region)))))
        .catch((err) => this.checkFailed(err));
      if (new Set(sums).size > 1) differing.push(region);
      progress.done++;
      onProgress?.(progress);
    }
    return differing;
  }

  /**
   * A replica failed a check's checksum: it leaves the in-sync set as after a failed write (store first), and the
   * check fails, since it no longer compares every replica that was in sync when it began.
   */
  private async checkFailed(err: unknown): Promise<never> {
    if (!(err instanceof ReplicaFault)) throw err;
    if (!this.isReplicaFault(err.cause) || this.replicas.length < 2 || !this.options.onReplicaFailed) {
      throw err.cause;
    }
    await this.drop([err.target], err.cause);
    throw new UnavailableError(
      "engine.check_failed",
      `a replica of volume ${this.options.volumeId} failed during the check and left the in-sync set ` +
        `(${err.message}); it resyncs once it answers again: check again then`,
      err.cause,
    );
  }

  /**
   * When `target`'s connection breaks, an in-sync replica is dropped at once and a catching-up one fails its resync;
   * a failing drop (store out of reach) leaves it failing, for the next request to retry.
   */
  private watch(target: ReplicaTarget): void {
    void target.lost?.then((cause) => {
      if (this.stopped) return;
      for (const entry of this.catchingUp) if (entry.target === target) entry.failure ??= cause;
      if (this.replicas.includes(target)) this.evict(target, cause).catch(() => undefined);
    });
  }

  /** The replica reads come from: the first in-sync one that has not failed. */
  private get primary(): ReplicaTarget {
    return (this.replicas.find((r) => !this.failing.has(r)) ?? this.replicas[0]) as ReplicaTarget;
  }

  /**
   * Copies `region` from `source` to each of `targets` whose bytes differ (to every one without `compare`); returns
   * those it copied to.
   */
  private copyRegion(
    source: ReplicaTarget,
    targets: ReplicaTarget[],
    region: number,
    compare = true,
  ): Promise<ReplicaTarget[]> {
    return this.locks.exclusive(region, () => this.copyHeld(source, targets, region, compare));
  }

  /** copyRegion's work, for a caller that holds the region. */
  private async copyHeld(
    source: ReplicaTarget,
    targets: ReplicaTarget[],
    region: number,
    compare: boolean,
  ): Promise<ReplicaTarget[]> {
    let stale = targets;
    if (compare) {
      const [want, ...have] = await Promise.all(
        [source, ...targets].map((r) => blame(r, r.regionChecksum(region))),
      );
      stale = targets.filter((_, i) => have[i] !== want);
    }
    if (stale.length === 0) return stale;
    const offset = region * REGION_SIZE;
    const length = Math.min(REGION_SIZE, this.size - offset);
    const data = await blame(source, source.read(offset, length));
    await Promise.all(
      stale.map((t) => blame(t, isZero(data) ? t.writeZeroes(offset, length) : t.write(offset, data))),
    );
    return stale;
  }

  /**
   * Makes every replica (in sync or catching up) agree on each suspect region among `regions`, copying it from the
   * primary under the region's lock. A replica that fails the copy is dropped (or, catching up, fails its resync)
   * and the copy is tried again without it; while one cannot be dropped the region stays suspect and the request
   * fails.
   */
  private async settle(regions: readonly number[]): Promise<void> {
    for (const region of regions) {
      while (this.suspect.has(region)) {
        if (this.options.lease?.held === false) await this.leaseHeld();
        this.assertRunning();
        try {
          await this.locks.exclusive(region, async () => {
            if (!this.suspect.delete(region)) return;
            const source = this.primary;
            const others = [
              ...this.healthy().filter((r) => r !== source),
              ...[...this.catchingUp].filter((e) => !e.failure).map((e) => e.target),
            ];
            await this.copyHeld(source, others, region, true).catch((err) => {
              this.suspect.add(region);
              throw err;
            });
          });
        } catch (err) {
          if (!(err instanceof ReplicaFault) || !this.isReplicaFault(err.cause)) {
            throw err instanceof ReplicaFault ? err.cause : err;
          }
          const behind = [...this.catchingUp].find((e) => e.target === err.target);
          if (behind) behind.failure ??= err.cause;
          else if (this.replicas.length < 2 || !this.options.onReplicaFailed) throw err.cause;
          else await this.drop([err.target], err.cause);
        }
      }
    }
  }

  /** A write, zeroing or trim: after every overlapping one still in flight (see WriteOrder), then fanned out. */
  private async ordered(
    offset: number,
    length: number,
    op: (replica: ReplicaTarget) => Promise<void>,
  ): Promise<void> {
    this.assertRunning();
    const entered = this.order.enter(offset, length);
    const write = entered instanceof Promise ? await entered : entered;
    try {
      await this.fanOut(op, regionsOf(offset, length));
    } finally {
      this.order.leave(write);
    }
  }

  /**
   * Runs `op` on every in-sync replica (and every one catching up). An in-sync replica that fails is dropped through
   * `onReplicaFailed` before the request is acknowledged; the volume stays writable while one remains. Fencing and
   * bad ranges are the request's fault, not a replica's, and fail the request as they are.
   */
  private async fanOut(
    op: (replica: ReplicaTarget) => Promise<void>,
    regions: number[],
    flushing = false,
  ): Promise<void> {
    this.assertRunning();
    if (this.suspect.size > 0) await this.settle(regions);
    const blocked = this.locks.enter(regions);
    if (blocked) await blocked;
    try {
      if (this.options.lease?.held === false) await this.leaseHeld();
      for (const missed of this.missed.values()) for (const r of regions) missed.add(r);
      // Replicas catching up are waited for too, so that a copy never overtakes a write still on its way to them.
      const behind = [...this.catchingUp].map((entry) =>
        op(entry.target).catch((err) => {
          entry.failure ??= err;
          if (flushing) this.noteFlushFailed(entry.target, err);
        }),
      );
      const replicas = this.failing.size === 0 ? [...this.replicas] : this.healthy();
      if (replicas.length === 1 && behind.length === 0 && this.failing.size === 0) {
        return await op(replicas[0] as ReplicaTarget).catch((err) => {
          this.isReplicaFault(err);
          throw err;
        });
      }
      const [results] = await Promise.all([Promise.allSettled(replicas.map(op)), Promise.all(behind)]);
      const failed: ReplicaTarget[] = [];
      let cause: unknown;
      for (const [i, result] of results.entries()) {
        if (result.status === "fulfilled") continue;
        if (!this.isReplicaFault(result.reason)) throw result.reason;
        const replica = replicas[i] as ReplicaTarget;
        failed.push(replica);
        cause ??= result.reason;
        this.noteMissed(replica, regions);
        if (flushing) this.noteFlushFailed(replica, result.reason);
      }
      if (failed.length === replicas.length || (failed.length > 0 && !this.options.onReplicaFailed)) {
        for (const region of regions) this.suspect.add(region);
        throw cause;
      }
      // Replicas that failed this request or an earlier one: the store learns before anything is acknowledged.
      if (failed.length > 0 || this.failing.size > 0) await this.drop([...failed, ...this.failing], cause);
    } finally {
      this.locks.leave(regions);
    }
  }

  /**
   * Waits, sending nothing to any replica, while this node's lease is in doubt; the engine stops for good if the
   * attachment turned out to be someone else's.
   */
  private async leaseHeld(): Promise<void> {
    const lease = this.options.lease;
    while (lease && !lease.held) {
      this.assertRunning();
      try {
        await Promise.race([lease.regained(), this.halted.promise]);
      } catch (err) {
        this.halt();
        throw err;
      }
    }
    this.assertRunning();
  }

  /** The in-sync replicas that have not failed. */
  private healthy(): ReplicaTarget[] {
    return this.replicas.filter((r) => !this.failing.has(r));
  }

  private noteMissed(replica: ReplicaTarget, regions: readonly number[]): void {
    const missed = this.missed.get(replica) ?? new Set<number>();
    this.missed.set(replica, missed);
    for (const r of regions) missed.add(r);
  }

  /** A flush that failed on the replica itself, not on the way to it, leaves the replica for a rebuild. */
  private noteFlushFailed(replica: ReplicaTarget, err: unknown): void {
    if ((err as { code?: unknown }).code !== "replica.unreachable") this.untrusted.add(replica);
  }

  /** Fencing stops the engine; a bad range is the caller's; anything else is the replica's fault. */
  private isReplicaFault(err: unknown): boolean {
    if (err instanceof FencedError) {
      this.halt();
      return false;
    }
    return !(err instanceof RangeError);
  }

  /**
   * Drops replicas once, however many concurrent requests saw them fail; each request waits for the drop. From the
   * first failure on, a replica gets no new request and records every write it misses. A drop the store could not
   * record leaves it failing: the next request tries again, and none is acknowledged before one succeeds.
   */
  private drop(failed: ReplicaTarget[], cause: unknown): Promise<void> {
    const members = [...new Set(failed)].filter((r) => this.replicas.includes(r));
    for (const replica of members) {
      this.failing.add(replica);
      this.noteMissed(replica, []);
    }
    const fresh = members.filter((r) => !this.dropping.has(r));
    if (fresh.length > 0) {
      const onReplicaFailed = this.options.onReplicaFailed;
      if (!onReplicaFailed) return Promise.reject(cause);
      const dropped = onReplicaFailed(fresh, cause).then(() => {
        for (const replica of fresh) {
          const at = this.replicas.indexOf(replica);
          if (at >= 0) this.replicas.splice(at, 1);
          this.failing.delete(replica);
        }
      });
      for (const replica of fresh)
        this.dropping.set(
          replica,
          dropped.finally(() => this.dropping.delete(replica)),
        );
    }
    return Promise.all(members.map((r) => this.dropping.get(r))).then(() => undefined);
  }

  private assertRunning(): void {
    if (this.stopped)
      throw new OperationError("engine.stopped", `volume ${this.options.volumeId} is detached or fenced`);
  }
}

function isZero(data: Buffer): boolean {
  for (let i = 0; i < data.length; i += 8) {
    if (i + 8 <= data.length ? data.readBigUInt64LE(i) !== 0n : data.subarray(i).some((b) => b !== 0))
      return false;
  }
  return true;
}

/** A replica's failure, tagged with the replica, where several are asked at once and the engine must drop one. */
class ReplicaFault extends Error {
  constructor(
    readonly target: ReplicaTarget,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

function blame<T>(target: ReplicaTarget, pending: Promise<T>): Promise<T> {
  return pending.catch((err) => {
    throw err instanceof ReplicaFault ? err : new ReplicaFault(target, err);
  });
}
