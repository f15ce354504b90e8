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
}

/** How long a takeover may take: the lease TTL, a dial to a frozen node, the CLI: generous, it is not a benchmark. */
const TAKEOVER_BOUND_MS = 45_000;
/** How long the fabric may take to have every replica in sync again after a fault ends. */
const HEAL_BOUND_MS = 120_000;

/**
 * The fault injector: one fault at a time, every kind once per round in an order the seed chooses, on a dev cluster with one volume attached.
 * Faults on the attached node are followed by a takeover on another node, as an orchestrator would do; every fault is
 * undone (restart, SIGCONT) and the campaign waits for the fabric to heal before the next, so the volume always has a
 * replica to serve from and every anomaly is the fabric's, not an impossible schedule's.
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
  ) {}

  private get nodes(): string[] {
    return this.cluster.up.nodes.map((n) => n.id);
  }

  /** Runs faults until `until` (a clock time), then returns with the fabric healed. */
  async run(until: number): Promise<void> {
    let round: FaultKind[] = [];
    while (this.clock() < until && !this.aborted) {
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
