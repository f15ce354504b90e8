import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type DevCluster, inSync, type VolumeJson, waitFor } from "../support/dev-cluster.js";
import type { Random } from "./random.js";
import type { RegisterModel } from "./register-model.js";

export const FAULT_KINDS = [
  "kill-replica",
  "freeze-replica",
  "kill-attached",
  "freeze-attached",
  "pause-etcd",
  "partition-replica",
  "partition-attached",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One fault as it happened. */
export interface FaultRecord {
  kind: FaultKind;
  /** The node it hit (none for etcd). */
  node?: string;
  /** Milliseconds since the campaign started. */
  at: number;
  /** How long the fault was held. */
  heldMs: number;
  /** For faults on the attached node: how long until another node served the volume. */
  takeoverMs?: number;
  /** How long until every node was up and every replica in sync again. */
  healedMs?: number;
  /** For a partition the volume was not placed for: the node it was moved from first (detach, attach). */
  movedFrom?: string;
}

/** A node the nemesis can cut off from the rest while it runs (a NetnsNode). */
export interface Partitionable {
  readonly id: string;
  partition(): Promise<void>;
  heal(): Promise<void>;
}

/** How long a takeover may take: the lease TTL, a dial to a frozen node, the CLI: generous, it is not a benchmark. */
const TAKEOVER_BOUND_MS = 45_000;
/** How long the fabric may take to have every replica in sync again after a fault ends. */
const HEAL_BOUND_MS = 120_000;

/**
 * The fault injector: one fault at a time, every kind once per round in an order the seed chooses, on a dev cluster
 * with one volume attached. Faults on the attached node are followed by a takeover on another node, as an
 * orchestrator would do; every fault is undone (restart, SIGCONT, the link back up) and the campaign waits for the
 * fabric to heal before the next, so the volume always has a replica to serve from and every anomaly is the fabric's,
 * not an impossible schedule's. Partitions hit the one node in a network namespace of its own: a partition of the
 * attached node first moves the volume there if it is elsewhere, a partition of a replica's node moves it away.
 */
export class Nemesis {
  readonly faults: FaultRecord[] = [];
  /** Set when the volume could not be taken over: no more faults, straight to the final checks. */
  aborted = false;

  constructor(
    private readonly cluster: DevCluster,
    private readonly volume: string,
    /** The node the volume is attached on now; the lanes connect there. */
    public attached: string,
    private readonly random: Random,
    private readonly model: RegisterModel,
    private readonly clock: () => number,
    private readonly partitionable: Partitionable,
  ) {}

  private get nodes(): string[] {
    return this.cluster.nodeIds;
  }

  /**
   * Runs rounds of faults until `until` (a clock time), then returns with the fabric healed. A round is never cut
   * short, so even a short run meets every kind.
   */
  async run(until: number): Promise<void> {
    let round: FaultKind[] = [];
    while ((this.clock() < until || round.length > 0) && !this.aborted) {
      // Rounds of every kind in a seeded order: a short run still meets each fault.
      if (round.length === 0) round = this.random.shuffle(FAULT_KINDS);
      const kind = round.shift() as FaultKind;
      const record: FaultRecord = { kind, at: this.clock(), heldMs: 0 };
      this.faults.push(record);
      await this.inject(record);
      const healing = this.clock();
      if (await this.heal()) record.healedMs = this.clock() - healing;
    }
  }

  private async inject(record: FaultRecord): Promise<void> {
    const others = this.nodes.filter((n) => n !== this.attached);
    const hold = async (min: number, max: number) => {
      record.heldMs = this.random.int(min, max);
      await new Promise((r) => setTimeout(r, record.heldMs));
    };
    switch (record.kind) {
      case "kill-replica": {
        record.node = this.random.pick(others);
        await this.cluster.stop(record.node, "SIGKILL");
        await hold(1000, 6000);
        await this.cluster.startNode(record.node);
        return;
      }
      case "freeze-replica": {
        record.node = this.random.pick(others);
        await this.cluster.freeze(record.node);
        await hold(1000, 8000);
        await this.cluster.thaw(record.node);
        return;
      }
      case "kill-attached":
      case "freeze-attached": {
        const victim = this.attached;
        record.node = victim;
        const kill = record.kind === "kill-attached";
        if (kill) await this.cluster.stop(victim, "SIGKILL");
        else await this.cluster.freeze(victim);
        const started = this.clock();
        const moved = await this.takeOver(this.random.pick(others));
        if (moved) record.takeoverMs = this.clock() - started;
        else this.aborted = true;
        await hold(500, 3000);
        if (kill) await this.cluster.startNode(victim);
        else await this.cluster.thaw(victim);
        // Without a takeover the campaign ends here: the volume goes back to where it was, for the final checks.
        if (!moved && kill) await this.takeOver(victim);
        return;
      }
      case "partition-replica": {
        const cut = this.partitionable;
        if (this.attached === cut.id) await this.move(record, this.random.pick(others));
        if (this.aborted) return;
        record.node = cut.id;
        await cut.partition();
        try {
          await hold(1000, 8000);
        } finally {
          await cut.heal();
        }
        return;
      }
      case "partition-attached": {
        const cut = this.partitionable;
        if (this.attached !== cut.id) await this.move(record, cut.id);
        if (this.aborted) return;
        record.node = cut.id;
        // The clients stay connected to the cut-off engine, which must acknowledge nothing once cut off.
        await cut.partition();
        try {
          const started = this.clock();
          const moved = await this.takeOver(this.random.pick(this.nodes.filter((n) => n !== cut.id)));
          if (moved) record.takeoverMs = this.clock() - started;
          else this.aborted = true;
          await hold(500, 3000);
        } finally {
          await cut.heal();
        }
        return;
      }
      case "pause-etcd": {
        const pid = await this.etcdPid();
        process.kill(pid, "SIGSTOP");
        try {
          await hold(1000, 5000);
        } finally {
          process.kill(pid, "SIGCONT");
        }
        return;
      }
    }
  }

  /** A planned move, as an orchestrator reschedules a task: detach where it is, attach on `node`. */
  private async move(record: FaultRecord, node: string): Promise<void> {
    record.movedFrom = this.attached;
    await this.cluster.json(["volume", "detach", this.volume], this.attached);
    if (!(await this.takeOver(node))) this.aborted = true;
  }

  /**
   * Attaches the volume on `node`, retrying until the old holder's lease has expired. A takeover that does not happen
   * within the bound is an anomaly (the volume was unavailable), and resolves false.
   */
  private async takeOver(node: string): Promise<boolean> {
    try {
      await waitFor(
        `${this.volume} attached on ${node}`,
        async () => {
          const r = await this.cluster.hf(["volume", "attach", this.volume, "--output", "json"], node);
          return r.code === 0 ? true : undefined;
        },
        TAKEOVER_BOUND_MS,
      );
      this.attached = node;
      return true;
    } catch (err) {
      this.model.record(
        "unavailable",
        `no takeover on ${node} within ${TAKEOVER_BOUND_MS} ms: ${String(err)}`,
      );
      return false;
    }
  }

  /** Waits until every node is up and every replica in sync; records an anomaly and returns false if it never is. */
  async heal(): Promise<boolean> {
    try {
      await waitFor(
        "every node up and every replica in sync",
        async () => {
          const nodes = await this.cluster.json<Array<{ state: string }>>(["node", "list"], this.attached);
          if (nodes.some((n) => n.state !== "up")) return undefined;
          const v = await this.cluster.json<VolumeJson>(["volume", "inspect", this.volume], this.attached);
          return v.attachedOn === this.attached && inSync(v).length === v.replicas.length ? true : undefined;
        },
        HEAL_BOUND_MS,
      );
      return true;
    } catch (err) {
      this.model.record("unavailable", `did not heal within ${HEAL_BOUND_MS} ms: ${String(err)}`);
      return false;
    }
  }

  private async etcdPid(): Promise<number> {
    const state = JSON.parse(await readFile(join(this.cluster.dir, "dev.json"), "utf8")) as {
      etcd: { pid: number };
    };
    return state.etcd.pid;
  }
}
