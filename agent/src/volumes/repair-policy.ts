import type { ReplicaRecord } from "./records.js";

/** What a repair pass does about a replica the engine is not writing to. */
export type ReplicaStep =
  /** Its node is up: bring it back into the in-sync set (Engine.resync picks how). */
  | "resync"
  /** Its node is down, or its last resync failed recently: try again on a later pass. */
  | "wait"
  /** Its node has been down longer than the replica timeout: make a new replica elsewhere in its place. */
  | "rebuild";

/** The longest wait between resync attempts of one replica, however often it fails. */
const MAX_BACKOFF_MS = 300_000;

/**
 * The replication policy of one attached volume: when a missing replica is resynced, waited for or rebuilt
 * elsewhere, how long a failing resync waits before the next try, and which replicas go when there are too many.
 * ReplicaSet carries these out; keeping the decisions here, with the clock given, lets them be tested alone.
 */
export class RepairPolicy {
  /** When each replica's node was first seen down, by node. */
  private readonly downSince = new Map<string, number>();
  /** Resyncs that failed, by node: the next try waits longer each time (a full pool fails every time). */
  private readonly backoff = new Map<string, { failures: number; until: number }>();

  constructor(
    /** How long a replica's node may stay down before the replica is rebuilt on another node. */
    private readonly replicaTimeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The step for a replica that is not open here, whose node is `up` or not as the cluster sees it now. */
  stepFor(node: string, up: boolean): ReplicaStep {
    const now = this.now();
    if (up) {
      this.downSince.delete(node);
      return (this.backoff.get(node)?.until ?? 0) <= now ? "resync" : "wait";
    }
    const since = this.downSince.get(node) ?? now;
    this.downSince.set(node, since);
    return now - since < this.replicaTimeoutMs ? "wait" : "rebuild";
  }

  /** A resync of the replica on `node` failed: how long until the next try (2 s, 4 s, ... at most 5 minutes). */
  resyncFailed(node: string): number {
    const failures = (this.backoff.get(node)?.failures ?? 0) + 1;
    const delay = Math.min(2 ** failures * 1000, MAX_BACKOFF_MS);
    this.backoff.set(node, { failures, until: this.now() + delay });
    return delay;
  }

  /** The replica on `node` is in sync again. */
  resynced(node: string): void {
    this.backoff.delete(node);
  }

  /** The replica on `node` was replaced by one elsewhere: nothing about it is waited for any more. */
  replaced(node: string): void {
    this.downSince.delete(node);
    this.backoff.delete(node);
  }

  /**
   * The `count` replicas to remove when the volume has more than its replication factor: those the engine is not
   * writing to first, never the one reads come from.
   */
  static extra(
    replicas: readonly ReplicaRecord[],
    count: number,
    isOpen: (node: string) => boolean,
    isPrimary: (node: string) => boolean,
  ): ReplicaRecord[] {
    return replicas
      .filter((r) => !isPrimary(r.node))
      .sort((a, b) => Number(isOpen(a.node)) - Number(isOpen(b.node)))
      .slice(0, Math.max(0, count));
  }
}
