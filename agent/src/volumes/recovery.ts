import type { Logger } from "pino";
import { ConflictError, NotFoundError } from "../errors.js";
import { type BadRecordError, type MetaStore, readRecords } from "../meta/index.js";
import type { VolumeCatalog } from "./catalog.js";
import type { LocalReplicas } from "./local-replicas.js";
import { QuarantineRecordSchema } from "./record-schemas.js";
import type { QuarantineRecord, StoreKeys } from "./records.js";
import type { ReplicaAccess } from "./replica-access.js";

export interface RecoveryOptions {
  nodeId: string;
  store: MetaStore;
  keys: StoreKeys;
  catalog: VolumeCatalog;
  replicas: LocalReplicas;
  /** How purge reaches another node's quarantined replica. */
  access: ReplicaAccess;
  /** How long a quarantined replica is kept before it is destroyed. */
  quarantineTtlMs: number;
  logger: Logger;
  /** Told of every quarantine record that is not valid: it is left out. */
  report: (err: BadRecordError) => void;
}

/**
 * What becomes of this node's replicas that no volume lists (docs/decisions/0009-recovery.md). Nothing is destroyed
 * on absence: a replica is destroyed only when a tombstone names this node for it, when someone purges it from
 * quarantine, or when it has been quarantined longer than the TTL. A replica no record lists when the agent starts
 * is quarantined: marked, published in the store for `node quarantine list`, and kept.
 */
export class Recovery {
  constructor(private readonly options: RecoveryOptions) {}

  /**
   * Destroys what a tombstone names, takes the mark off quarantined replicas that a record lists after all, and
   * destroys those quarantined longer than the TTL. With `quarantineNew` (at start, before this node serves any
   * replica) it also quarantines every replica no record lists; later, such a replica may be one being created,
   * whose record is not written yet, so it is left alone.
   */
  async sweep(quarantineNew = false): Promise<void> {
    const { catalog, nodeId, replicas, quarantineTtlMs, logger } = this.options;
    const volumes = await catalog.list();
    const listed = new Set(volumes.filter((v) => v.replicas.some((r) => r.node === nodeId)).map((v) => v.id));
    const tombstones = new Map((await catalog.tombstonesOf(nodeId)).map((t) => [t.id, t]));
    const local = new Set(await replicas.list());
    for (const id of local) {
      const since = await replicas.quarantinedSince(id);
      if (listed.has(id)) {
        if (since === undefined) continue;
        await replicas.unquarantine(id);
        await this.unpublish(nodeId, id);
        logger.info({ volume: id }, "a quarantined replica is listed by its volume: kept and back in use");
        continue;
      }
      const tombstone = tombstones.get(id);
      if (tombstone) {
        const why =
          tombstone.reason === "deleted" ? "its volume was deleted" : "it was removed from its volume";
        if (await this.stillTombstoned(id)) await this.destroyHere(id, `destroying a replica: ${why}`);
      } else if (since === undefined) {
        if (!quarantineNew) continue;
        await this.publish(id);
        logger.warn(
          { volume: id },
          "quarantined a replica that no volume lists on this node: kept; see 'holdfast node quarantine list'",
        );
      } else if (Date.now() - Date.parse(since) > quarantineTtlMs) {
        await this.destroyHere(id, "destroying a replica quarantined longer than quarantineTtl");
      } else {
        await this.publish(id);
      }
    }
    for (const id of tombstones.keys()) if (!local.has(id)) await catalog.release(id, nodeId);
    for (const q of await this.list(nodeId))
      if (!local.has(q.volumeId)) await this.unpublish(nodeId, q.volumeId);
  }

  /** Records that this node's replica `id` was destroyed (on another node's request): off its tombstone and quarantine. */
  async destroyed(id: string): Promise<void> {
    await this.options.catalog.release(id, this.options.nodeId);
    await this.unpublish(this.options.nodeId, id);
  }

  /** Quarantined replicas, of every node or of `node`. */
  async list(node?: string): Promise<QuarantineRecord[]> {
    const { store, keys } = this.options;
    const entries = await store.list(node ? `${keys.quarantine}${node}/` : keys.quarantine);
    return readRecords(QuarantineRecordSchema, entries, this.options.report, (q, key) =>
      key === keys.quarantined(q.node, q.volumeId) ? undefined : `it says ${q.node}/${q.volumeId}`,
    );
  }

  /** Destroys quarantined replicas: `id` (on any node, or on `node`), or every one on `node`. */
  async purge(filter: { node?: string; id?: string }): Promise<QuarantineRecord[]> {
    const { catalog, nodeId, replicas, access, logger } = this.options;
    const matches = (await this.list(filter.node)).filter((q) => !filter.id || q.volumeId === filter.id);
    if (filter.id && matches.length === 0) {
      throw new NotFoundError("quarantine", filter.node ? `${filter.node}/${filter.id}` : filter.id);
    }
    for (const q of matches) {
      const record = await catalog.find(q.volumeId);
      if (record?.replicas.some((r) => r.node === q.node)) {
        throw new ConflictError(
          "quarantine.listed",
          `the replica of ${q.volumeId} on ${q.node} is listed by volume "${record.spec.name}" again: it is not purged`,
          "id",
        );
      }
      if (q.node === nodeId) {
        await replicas.destroy(q.volumeId);
        await this.destroyed(q.volumeId);
      } else {
        // That node destroys only what a tombstone names for it (replica-authority.ts).
        await catalog.condemn(q.volumeId, q.node);
        await access.destroy(q.node, q.volumeId);
        await this.unpublish(q.node, q.volumeId);
      }
      logger.warn({ volume: q.volumeId, node: q.node }, "purged a quarantined replica");
    }
    return matches;
  }

  /**
   * Whether a tombstone still names this node for `id` and no record lists it, read again just before destroying:
   * an engine may have chosen this node again since the sweep read the lists.
   */
  private async stillTombstoned(id: string): Promise<boolean> {
    const { catalog, nodeId } = this.options;
    const [record, tombstones] = await Promise.all([catalog.find(id), catalog.tombstonesOf(nodeId)]);
    return !record?.replicas.some((r) => r.node === nodeId) && tombstones.some((t) => t.id === id);
  }

  private async destroyHere(id: string, message: string): Promise<void> {
    try {
      await this.options.replicas.destroy(id);
    } catch (err) {
      this.options.logger.warn({ volume: id, err: String(err) }, "replica not destroyed now; retried later");
      return;
    }
    await this.destroyed(id);
    this.options.logger.warn({ volume: id }, message);
  }

  /** Marks replica `id` quarantined (if it is not yet) and publishes it in the store. */
  private async publish(id: string): Promise<void> {
    const { store, keys, nodeId, replicas } = this.options;
    const { pool, since } = await replicas.quarantine(id);
    const record: QuarantineRecord = {
      node: nodeId,
      volumeId: id,
      pool,
      since,
      bytes: (await replicas.bytesOnDisk(id)) ?? null,
    };
    await store.commit([], [{ put: keys.quarantined(nodeId, id), value: JSON.stringify(record) }]);
  }

  private async unpublish(node: string, id: string): Promise<void> {
    await this.options.store.commit([], [{ delete: this.options.keys.quarantined(node, id) }]);
  }
}
