import type { Logger } from "pino";
import { type NodeStatus, placementFor, placeReplicas } from "../cluster/index.js";
import { FencedError, type ReplicaTarget, type ServingLease } from "../contracts/index.js";
import { Engine, type ResyncProgress } from "../engine/index.js";
import { OperationError } from "../errors.js";
import { StoreUnavailableError } from "../meta/index.js";
import type { VolumeCatalog } from "./catalog.js";
import type { AttachmentRecord, ReplicaRecord, VolumeRecord } from "./records.js";
import { RepairPolicy } from "./repair-policy.js";
import type { OpenReplica, ReplicaAccess } from "./replica-access.js";

export interface ReplicaSetOptions {
  record: VolumeRecord;
  attachment: AttachmentRecord;
  access: ReplicaAccess;
  catalog: VolumeCatalog;
  logger: Logger;
  /** How long a replica's node may stay down before the replica is rebuilt on another node. */
  replicaTimeoutMs: number;
  /**
   * Told of the volume's record each time a repair pass reads it fresh from the store, so that a change made through
   * another node's API (io_profile, io_priority) reaches the I/O here.
   * @default - none
   */
  onRecord?: (record: VolumeRecord) => void;
}

/** A replica this engine has open: in sync, or catching up. */
interface Member extends OpenReplica {
  node: string;
}

/**
 * The replicas of one attached volume and the engine over them. It keeps the in-sync set in the store true: a
 * replica that fails leaves it (through the engine, before the write it missed is acknowledged), and `repair`
 * brings the volume back to its replication factor: it resyncs replicas whose node is back, rebuilds those whose
 * node stayed down longer than the replica timeout on other nodes, and adds or removes replicas when `repl`
 * changed. Store updates go one at a time, in the order the engine made them. What to do and when (resync, wait,
 * rebuild, which replica to remove) is RepairPolicy's; this class carries it out.
 */
export class ReplicaSet {
  private readonly members = new Map<string, Member>();
  /** Replicas the engine dropped, by node: their resync copies what the engine recorded they missed. */
  private readonly dropped = new Map<string, ReplicaTarget>();
  private readonly progress = new Map<string, ResyncProgress>();
  private readonly policy: RepairPolicy;
  private queue: Promise<unknown> = Promise.resolve();
  private repairing?: Promise<void>;
  private regaining?: Promise<void>;
  private closed = false;
  engine!: Engine;

  private constructor(private readonly options: ReplicaSetOptions) {
    this.policy = new RepairPolicy(options.replicaTimeoutMs);
  }

  private get id(): string {
    return this.options.record.id;
  }

  private get epoch(): number {
    return this.options.attachment.epoch;
  }

  /**
   * Opens every in-sync replica it can reach (this node's first, so reads stay local), takes the unreachable ones
   * out of the in-sync set, and starts the engine, which fences older engines and reconciles after a crash. The
   * replicas are opened all at once: each dial is bounded, so a frozen node costs one bound, not one per node.
   */
  static async open(options: ReplicaSetOptions): Promise<ReplicaSet> {
    const set = new ReplicaSet(options);
    const { record, access, logger } = options;
    const inSync = record.replicas
      .filter((r) => r.state === "in-sync")
      .sort((a, b) => Number(b.node === access.nodeId) - Number(a.node === access.nodeId));
    const unreachable: string[] = [];
    const opened = await Promise.allSettled(inSync.map((r) => access.open(r.node, record.id)));
    for (const [i, result] of opened.entries()) {
      const { node } = inSync[i] as ReplicaRecord;
      if (result.status === "fulfilled") {
        set.members.set(node, { node, ...result.value });
        continue;
      }
      const err = result.reason as Error;
      logger.warn({ volume: record.spec.name, node, err: String(err) }, "in-sync replica unreachable");
      unreachable.push(`${node}: ${err.message}`);
    }
    try {
      if (set.members.size === 0) {
        throw new OperationError(
          "volume.no_replica",
          `no in-sync replica of volume "${record.spec.name}" is reachable (${unreachable.join("; ") || "none is in sync"})`,
        );
      }
      if (unreachable.length > 0) {
        const reachable = new Set(set.members.keys());
        await set.persist((rs) =>
          rs.map((r) => (r.state === "in-sync" && !reachable.has(r.node) ? { ...r, state: "down" } : r)),
        );
      }
      const members = [...set.members.values()];
      set.engine = await Engine.start({
        volumeId: record.id,
        epoch: options.attachment.epoch,
        replicas: members.map((m) => m.target),
        onReplicaFailed: (failed, cause) => set.onFailed(failed, cause),
        lease: set.servingLease(),
      });
      return set;
    } catch (err) {
      await set.closeMembers();
      throw err;
    }
  }

  /**
   * The engine's standing to serve: this node's lease, and, before serving again after it was in doubt, proof from
   * the store that the attachment is still this engine's (the lease may have expired and another node taken over).
   * Concurrent requests share one proof.
   */
  private servingLease(): ServingLease {
    const { membership } = this.options.access;
    return {
      get held() {
        return membership.leaseHeld;
      },
      regained: () => {
        this.regaining ??= this.proveAttachment().finally(() => {
          this.regaining = undefined;
        });
        return this.regaining;
      },
    };
  }

  private async proveAttachment(): Promise<void> {
    const { access, catalog, logger, record } = this.options;
    logger.warn({ volume: record.spec.name }, "this node's lease is in doubt: I/O suspended");
    for (;;) {
      await access.membership.leaseRegained();
      try {
        const current = await catalog.attachment(this.id);
        if (current?.node !== access.nodeId || current.epoch !== this.epoch) {
          logger.warn(
            { volume: record.spec.name },
            "attachment lost while the lease was in doubt: engine stopped",
          );
          throw new OperationError(
            "volume.fenced",
            `volume "${record.spec.name}" is attached elsewhere now (epoch ${current?.epoch ?? "none"})`,
          );
        }
        logger.info({ volume: record.spec.name }, "lease held and attachment proven: I/O resumed");
        return;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Resync progress by node, for the replicas catching up now. */
  resyncProgress(): ReadonlyMap<string, ResyncProgress> {
    return this.progress;
  }

  /**
   * One pass of repair; concurrent callers share the pass in progress. `nodes` is the cluster's node list when the
   * caller has just read it (one read for every volume attached here), else it is read here.
   */
  repair(nodes?: NodeStatus[]): Promise<void> {
    this.repairing ??= this.repairOnce(nodes).finally(() => {
      this.repairing = undefined;
    });
    return this.repairing;
  }

  /** Stops repair and lets go of the replicas (the engine has been stopped by then). */
  async close(): Promise<void> {
    this.closed = true;
    await this.repairing?.catch(() => undefined);
    await this.closeMembers();
  }

  private async repairOnce(known?: NodeStatus[]): Promise<void> {
    if (this.closed || this.engine.isStopped) return;
    const { access, catalog, logger } = this.options;
    let record = await catalog.get(this.id);
    this.options.onRecord?.(record);
    const nodes = known ?? (await access.nodes());
    const byId = new Map(nodes.map((n) => [n.id, n]));
    // A replica whose node's lease expired is asked whether it still answers: a dead node fails at once (or, frozen,
    // after the liveness bound), while an etcd outage that expired every lease must not cost any replica. All are
    // asked at once: two frozen nodes cost one bound. (A connection that broke has been dropped already: Engine.watch.)
    const doubted = [...this.members.values()].filter(
      (m) =>
        m.node !== access.nodeId && byId.get(m.node)?.state !== "up" && this.engine.inSync.includes(m.target),
    );
    await Promise.all(
      doubted.map((member) =>
        member.target.admit(this.epoch).catch((err) => {
          if (err instanceof FencedError) throw err;
          return this.engine.evict(
            member.target,
            new Error(`node ${member.node} is down: ${(err as Error).message}`),
          );
        }),
      ),
    );
    for (const r of record.replicas) {
      if (this.members.has(r.node) || this.closed) continue;
      const step = this.policy.stepFor(r.node, byId.get(r.node)?.state === "up");
      if (step === "resync") await this.resync(r.node);
      if (step !== "rebuild") continue;
      logger.warn(
        { volume: record.spec.name, node: r.node },
        "replica's node down too long: rebuilding elsewhere",
      );
      const [target] = placeReplicas(
        nodes,
        placementFor(
          record.spec,
          1,
          record.replicas.map((r) => r.node),
        ),
      );
      if (!target) continue;
      const { pool } = await access.create(target.id, this.replicaSpec(record));
      await this.persist((rs) => [
        ...rs.filter((x) => x.node !== r.node),
        { node: target.id, pool, state: "resyncing" },
      ]);
      this.policy.replaced(r.node);
      this.forgetDropped(r.node);
      await this.resync(target.id);
    }
    record = await catalog.get(this.id);
    const missing = record.spec.repl - record.replicas.length;
    if (missing > 0 && !this.closed) {
      for (const target of placeReplicas(
        nodes,
        placementFor(
          record.spec,
          missing,
          record.replicas.map((r) => r.node),
        ),
      )) {
        const { pool } = await access.create(target.id, this.replicaSpec(record));
        await this.persist((rs) => [...rs, { node: target.id, pool, state: "resyncing" }]);
        logger.info({ volume: record.spec.name, node: target.id }, "replica added");
        await this.resync(target.id);
      }
    }
    if (missing < 0) await this.removeExtra(record, -missing);
  }

  /** Removes `count` replicas: out-of-sync ones first, never the one reads come from. */
  private async removeExtra(record: VolumeRecord, count: number): Promise<void> {
    const primary = this.engine.inSync[0];
    const extra = RepairPolicy.extra(
      record.replicas,
      count,
      (node) => this.members.has(node),
      (node) => this.members.get(node)?.target === primary,
    );
    for (const r of extra) {
      await this.persist((rs) => rs.filter((x) => x.node !== r.node));
      const member = this.members.get(r.node);
      if (member) {
        this.engine.remove(member.target);
        this.members.delete(r.node);
        await member.close().catch(() => undefined);
      }
      this.forgetDropped(r.node);
      await this.options.access
        .destroy(r.node, this.id)
        .catch((err) =>
          this.options.logger.warn({ node: r.node, err: String(err) }, "cannot delete a removed replica yet"),
        );
      this.options.logger.info({ volume: record.spec.name, node: r.node }, "replica removed");
    }
  }

  /**
   * Brings the replica on `node` back into the in-sync set, by the plan the engine makes from what it knows of the
   * replica's past (Engine.resync): a rebuild after a flush that failed on its disk, only the regions it missed plus
   * those in its own activity log when this engine dropped it otherwise, every region compared when it knows nothing.
   */
  private async resync(node: string): Promise<void> {
    const { access, logger, record } = this.options;
    let opened: OpenReplica;
    try {
      opened = await access.open(node, this.id);
    } catch (err) {
      logger.debug({ node, err: String(err) }, "replica not reachable yet");
      return;
    }
    const member: Member = { node, ...opened };
    const started = Date.now();
    try {
      await this.persist(withState([node], "resyncing"));
      this.members.set(node, member);
      const plan = await this.engine.resync(member.target, () => this.persist(withState([node], "in-sync")), {
        dropped: this.dropped.get(node),
        onProgress: (p) => this.progress.set(node, { ...p }),
      });
      this.forgetDropped(node);
      this.policy.resynced(node);
      const p = this.progress.get(node);
      logger.info(
        {
          volume: record.spec.name,
          node,
          regions: p?.total,
          copied: p?.copied,
          ms: Date.now() - started,
          plan,
        },
        "replica resynced",
      );
    } catch (err) {
      const delay = this.policy.resyncFailed(node);
      logger.warn(
        { volume: record.spec.name, node, err: String(err), retryInMs: delay },
        "resync failed; will retry",
      );
      if (!this.engine.inSync.includes(member.target)) {
        // The engine judges the next try by this one when it had nothing else (a flush that failed on the disk).
        if (!this.dropped.has(node)) this.dropped.set(node, member.target);
        this.members.delete(node);
        await member.close().catch(() => undefined);
        await this.persist(withState([node], "down")).catch(() => undefined);
      }
    } finally {
      this.progress.delete(node);
    }
  }

  /** The engine's onReplicaFailed: the store learns first, then the engine stops counting on them. */
  private async onFailed(failed: ReplicaTarget[], cause: unknown): Promise<void> {
    const nodes = [...this.members.values()].filter((m) => failed.includes(m.target)).map((m) => m.node);
    this.options.logger.warn(
      { volume: this.options.record.spec.name, nodes, err: String(cause) },
      "replica failed: leaving the in-sync set",
    );
    await this.persist(withState(nodes, "down")).catch((err) => {
      // Another node holds the attachment now (this one was cut off, then taken over): stop serving here.
      if ((err as { code?: string }).code === "volume.fenced") {
        this.options.logger.warn(
          { volume: this.options.record.spec.name },
          "attachment lost: engine stopped",
        );
        this.engine.halt();
      }
      throw err;
    });
    for (const node of nodes) {
      const member = this.members.get(node);
      if (!member) continue;
      this.members.delete(node);
      this.dropped.set(node, member.target);
      void member.close().catch(() => undefined);
    }
  }

  /**
   * Applies `change` to the replica list, after every earlier change, guarded by this attachment's epoch. While
   * the store is unreachable it keeps trying: a write waiting on it stays unacknowledged rather than be
   * acknowledged without the store knowing which replicas hold it ("run flat" only while nothing fails).
   */
  private persist(change: (replicas: ReplicaRecord[]) => ReplicaRecord[]): Promise<void> {
    const run = async () => {
      for (;;) {
        try {
          await this.options.catalog.updateReplicas(this.id, this.epoch, change);
          return;
        } catch (err) {
          if (!(err instanceof StoreUnavailableError) || this.closed) throw err;
          this.options.logger.warn("metadata store unreachable: holding the replica change until it is back");
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private replicaSpec(record: VolumeRecord) {
    return { volumeId: record.id, size: this.engine.size, blockSize: record.spec.blockSize };
  }

  /** Forgets a replica this engine dropped, and the regions the engine recorded it missed. */
  private forgetDropped(node: string): void {
    const old = this.dropped.get(node);
    if (old) this.engine.forget(old);
    this.dropped.delete(node);
  }

  private async closeMembers(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.close().catch(() => undefined)));
    this.members.clear();
  }
}

/** A change that sets the state of the replicas on `nodes`. */
function withState(nodes: string[], state: ReplicaRecord["state"]) {
  return (replicas: ReplicaRecord[]): ReplicaRecord[] =>
    replicas.map((r) => (nodes.includes(r.node) ? { ...r, state } : r));
}
