import type { IoPriority } from "../volume-spec/index.js";

/** How many slots one request of each priority is worth relative to the others when the node is saturated. */
export const PRIORITY_WEIGHTS: Readonly<Record<IoPriority, number>> = { high: 4, medium: 2, low: 1 };

export interface IoSharesOptions {
  /**
   * Requests in flight to the engines of all volumes on this node at once; past it, requests queue and the next free
   * slot goes by weighted fair share.
   * @default 32
   */
  limit?: number;
}

/** A request waiting for a slot: its virtual finish time, and how to let it go. */
interface Waiting {
  finish: number;
  /** Arrival order across all lanes: breaks ties between equal finish times deterministically. */
  seq: number;
  admit: () => void;
}

/**
 * One volume's place in the node's shares. Requests it sends through `run` take a slot each; its priority can
 * change at any time and counts from the next request it queues.
 */
export class IoLane {
  /** Requests admitted to the engine so far (tests and metrics read it). */
  admitted = 0;
  /** The virtual finish time of this lane's last queued request: its next one finishes after it (WFQ). */
  lastFinish = 0;
  readonly queue: Waiting[] = [];
  /** Left the shares (volume detached): forgotten once its last queued request is admitted. */
  left = false;

  constructor(
    private readonly shares: IoShares,
    public priority: IoPriority,
  ) {}

  /** Runs `fn` once a slot is free; uncontended, at once and without a turn of the event loop. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const waited = this.shares.acquire(this);
    const go = () => {
      this.admitted++;
      let pending: Promise<T>;
      try {
        pending = fn();
      } catch (err) {
        pending = Promise.reject(err);
      }
      return pending.finally(() => this.shares.release());
    };
    return waited ? waited.then(go) : go();
  }
}

/**
 * The node's I/O slots, shared by every volume attached here (one per agent). Uncontended, a request never waits.
 * Saturated, the next free slot goes to the waiting request with the smallest virtual finish time (weighted fair
 * queuing): each lane's requests are spaced `1 / weight` apart in virtual time, so backlogged high, medium and low
 * lanes are admitted 4:2:1, and a lane that was idle starts at the current virtual time rather than with credit
 * saved up while it sent nothing. Within a lane, requests keep their arrival order.
 */
export class IoShares {
  readonly limit: number;
  private inFlight = 0;
  /** Virtual time: the finish time of the request admitted last. */
  private now = 0;
  private seq = 0;
  private readonly lanes = new Set<IoLane>();

  constructor(options: IoSharesOptions = {}) {
    this.limit = options.limit ?? 32;
    if (!Number.isInteger(this.limit) || this.limit < 1) {
      throw new RangeError(`IoShares limit must be a positive integer, not ${this.limit}`);
    }
  }

  /** A lane for one volume; give it back with `leave` when the volume is detached. */
  join(priority: IoPriority): IoLane {
    const lane = new IoLane(this, priority);
    this.lanes.add(lane);
    return lane;
  }

  /** Forgets a lane. Its queued requests are still admitted in turn: a detach never strands one. */
  leave(lane: IoLane): void {
    lane.left = true;
    if (lane.queue.length === 0) this.lanes.delete(lane);
  }

  /** Requests in flight now, and waiting for a slot (for metrics and tests). */
  get load(): { inFlight: number; waiting: number } {
    let waiting = 0;
    for (const lane of this.lanes) waiting += lane.queue.length;
    return { inFlight: this.inFlight, waiting };
  }

  /** Takes a slot for `lane`: undefined when one was free, else a promise of one. */
  acquire(lane: IoLane): Promise<void> | undefined {
    if (this.inFlight < this.limit && lane.queue.length === 0) {
      this.inFlight++;
      return undefined;
    }
    const finish = Math.max(this.now, lane.lastFinish) + 1 / PRIORITY_WEIGHTS[lane.priority];
    lane.lastFinish = finish;
    this.lanes.add(lane);
    return new Promise((admit) => lane.queue.push({ finish, seq: this.seq++, admit }));
  }

  /** Gives a slot back and hands it to the waiting request that finishes first in virtual time. */
  release(): void {
    this.inFlight--;
    let next: IoLane | undefined;
    for (const lane of this.lanes) {
      const head = lane.queue[0];
      if (!head) continue;
      const best = next?.queue[0];
      if (!best || head.finish < best.finish || (head.finish === best.finish && head.seq < best.seq)) {
        next = lane;
      }
    }
    const waiting = next?.queue.shift();
    if (!next || !waiting) return;
    if (next.left && next.queue.length === 0) this.lanes.delete(next);
    this.inFlight++;
    this.now = waiting.finish;
    waiting.admit();
  }
}
