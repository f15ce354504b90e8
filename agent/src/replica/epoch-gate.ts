import { FencedError } from "../contracts/index.js";

/**
 * Admission of engines to one replica. Every request carries its engine's epoch and runs only at the epoch admitted
 * last. Asking to admit a higher epoch refuses every lower one from that instant, and the admission completes only
 * once each request that was let in at a lower epoch has finished and the new epoch is durable. So once a newer
 * engine's admit has resolved, no write of an older engine can still land here, whichever path it came by (the
 * local engine or the replication port): the check and the admission are one step, not a read and a later write.
 */
export class EpochGate {
  /** The epoch requests may carry: admitted and durable. */
  private serving: number;
  /** The highest epoch asked for; above `serving` while its admission waits for older requests or the disk. */
  private highest: number;
  private inFlight = 0;
  private readonly drained: Array<() => void> = [];
  private admissions: Promise<void> = Promise.resolve();

  constructor(
    epoch: number,
    /** Makes an epoch durable; a restart must never forget an epoch the replica admitted. */
    private readonly persist: (epoch: number) => Promise<void>,
  ) {
    this.serving = epoch;
    this.highest = epoch;
  }

  /** The highest epoch this replica has been asked to admit. */
  get epoch(): number {
    return this.highest;
  }

  /**
   * Runs `op` as a request of `epoch`. Refused at once unless `epoch` is the admitted one and no newer admission
   * is under way (epoch 0, a replica no engine has admitted yet, serves nobody); counted until it settles.
   */
  async run<T>(epoch: number, op: () => Promise<T>): Promise<T> {
    if (epoch < 1 || epoch !== this.serving || this.highest !== this.serving) {
      throw new FencedError(epoch, this.highest);
    }
    this.inFlight++;
    try {
      return await op();
    } finally {
      if (--this.inFlight === 0) for (const wake of this.drained.splice(0)) wake();
    }
  }

  /**
   * Admits `epoch`: refuses one below the highest asked for, refuses every request of a lower epoch from now on,
   * then waits for those already running, and records the epoch durably before resolving.
   */
  admit(epoch: number): Promise<void> {
    if (!Number.isSafeInteger(epoch) || epoch < 1)
      return Promise.reject(new FencedError(epoch, this.highest));
    if (epoch < this.highest) return Promise.reject(new FencedError(epoch, this.highest));
    this.highest = epoch;
    // One admission at a time, so two engines' admits never write the epoch file at once.
    const next = this.admissions.catch(() => undefined).then(() => this.complete(epoch));
    this.admissions = next;
    return next;
  }

  private async complete(epoch: number): Promise<void> {
    if (epoch < this.highest) throw new FencedError(epoch, this.highest);
    if (epoch === this.serving) return;
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    await this.persist(epoch);
    // A still newer admission may have started meanwhile; it sets `serving` itself when it completes.
    if (epoch === this.highest) this.serving = epoch;
    else throw new FencedError(epoch, this.highest);
  }
}
