import { randomBytes } from "node:crypto";
import { VolumeId } from "../contracts/index.js";
import { ConflictError, NotFoundError, OperationError } from "../errors.js";
import {
  BadRecordError,
  filedUnder,
  type MetaStore,
  type Operation,
  readRecord,
  readRecords,
  type StoredValue,
} from "../meta/index.js";
import type { VolumeSpec } from "../volume-spec/index.js";
import { AttachmentRecordSchema, TombstoneRecordSchema, VolumeRecordSchema } from "./record-schemas.js";
import type { AttachmentRecord, ReplicaRecord, StoreKeys, TombstoneRecord, VolumeRecord } from "./records.js";

/**
 * `current` (or a new tombstone of `record`) with `add` put on and `keep` taken off. A deletion outranks a
 * removal: once the volume is gone, every node named may destroy its replica.
 */
function withNodes(
  current: TombstoneRecord | undefined,
  record: VolumeRecord,
  reason: TombstoneRecord["reason"],
  add: string[],
  keep: string[],
): TombstoneRecord {
  const nodes = [...new Set([...(current?.nodes ?? []), ...add])].filter((n) => !keep.includes(n)).sort();
  return {
    id: record.id,
    name: record.spec.name,
    reason: current?.reason === "deleted" ? "deleted" : reason,
    nodes,
    since: current?.since ?? new Date().toISOString(),
  };
}

/** Writes a tombstone, or deletes it once no node is left on it. */
function tombstonePut(key: string, tombstone: TombstoneRecord): Operation {
  return tombstone.nodes.length > 0 ? { put: key, value: JSON.stringify(tombstone) } : { delete: key };
}

/**
 * Volume records in the metadata store: names are unique through a compare on the name key, attachments
 * are unique through a compare on the attachment key, and epochs only ever grow.
 */
export class VolumeCatalog {
  constructor(
    private readonly store: MetaStore,
    private readonly keys: StoreKeys,
    /** Told of every record that is not valid (record-schemas.ts): it is never acted on. */
    private readonly report: (err: BadRecordError) => void,
  ) {}

  private read<T>(parse: () => T): T {
    try {
      return parse();
    } catch (err) {
      if (err instanceof BadRecordError) this.report(err);
      throw err;
    }
  }

  private get volumeFiled() {
    return filedUnder<VolumeRecord>(this.keys.volumes, "volume", (r) => r.id);
  }

  private get tombstoneFiled() {
    return filedUnder<TombstoneRecord>(this.keys.tombstones, "volume", (t) => t.id);
  }

  private volumeOf(entry: StoredValue): VolumeRecord {
    return this.read(() => readRecord(VolumeRecordSchema, entry, this.volumeFiled));
  }

  private attachmentOf(entry: StoredValue): AttachmentRecord {
    return this.read(() => readRecord(AttachmentRecordSchema, entry));
  }

  private tombstoneOf(entry: StoredValue): TombstoneRecord {
    return this.read(() => readRecord(TombstoneRecordSchema, entry, this.tombstoneFiled));
  }

  /** A fresh volume id (its replicas are created under it before the record is). */
  newId(): string {
    return randomBytes(8).toString("hex");
  }

  /** Records a new volume; refuses a name in use. */
  async create(
    spec: VolumeSpec,
    replicas: VolumeRecord["replicas"],
    id: string = this.newId(),
  ): Promise<VolumeRecord> {
    const record: VolumeRecord = {
      id,
      spec,
      replicas,
      createdAt: new Date().toISOString(),
    };
    const ok = await this.store.commit(
      [{ key: this.keys.name(spec.name), revision: 0 }],
      [
        { put: this.keys.name(spec.name), value: record.id },
        { put: this.keys.volume(record.id), value: JSON.stringify(record) },
      ],
    );
    if (!ok) throw new ConflictError("volume.exists", `volume "${spec.name}" already exists`, "name");
    return record;
  }

  /** The volume called `nameOrId` (a name first, then an id). */
  async get(nameOrId: string): Promise<VolumeRecord> {
    const found = await this.find(nameOrId);
    if (!found) throw new NotFoundError("volume", nameOrId);
    return found;
  }

  async find(nameOrId: string): Promise<VolumeRecord | undefined> {
    const byName = await this.store.get(this.keys.name(nameOrId));
    if (byName && !VolumeId.safeParse(byName.value).success) {
      const err = new BadRecordError(byName.key, "a name must map to a volume id");
      this.report(err);
      throw err;
    }
    const id = byName?.value ?? nameOrId;
    const entry = await this.store.get(this.keys.volume(id));
    return entry ? this.volumeOf(entry) : undefined;
  }

  /** The record of volume `id` (never read as a name). */
  async byId(id: string): Promise<VolumeRecord | undefined> {
    const entry = await this.store.get(this.keys.volume(id));
    return entry ? this.volumeOf(entry) : undefined;
  }

  /** Every valid volume record, by name; one that is not valid is reported and left out. */
  async list(): Promise<VolumeRecord[]> {
    const entries = await this.store.list(this.keys.volumes);
    return readRecords(VolumeRecordSchema, entries, this.report, this.volumeFiled).sort((a, b) =>
      a.spec.name.localeCompare(b.spec.name),
    );
  }

  /** Replaces a volume's record, if nobody changed it since `read`. */
  async update(id: string, change: (record: VolumeRecord) => VolumeRecord): Promise<VolumeRecord> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.store.get(this.keys.volume(id));
      if (!entry) throw new NotFoundError("volume", id);
      const next = change(this.volumeOf(entry));
      const ok = await this.store.commit(
        [{ key: entry.key, revision: entry.revision }],
        [{ put: entry.key, value: JSON.stringify(next) }],
      );
      if (ok) return next;
    }
    throw new OperationError("volume.contended", `volume ${id} kept changing under the update; try again`);
  }

  /**
   * Forgets a volume, and in the same transaction leaves a tombstone naming every node that holds a replica of it:
   * only what a tombstone names is ever destroyed by a node that finds it. Refuses while the volume is attached.
   */
  async remove(record: VolumeRecord): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.store.get(this.keys.tombstone(record.id));
      const tombstone = withNodes(
        entry ? this.tombstoneOf(entry) : undefined,
        record,
        "deleted",
        record.replicas.map((r) => r.node),
        [],
      );
      const ok = await this.store.commit(
        [
          { key: this.keys.attachment(record.id), revision: 0 },
          { key: this.keys.tombstone(record.id), revision: entry?.revision ?? 0 },
        ],
        [
          { delete: this.keys.name(record.spec.name) },
          { delete: this.keys.volume(record.id) },
          { delete: this.keys.epoch(record.id) },
          tombstonePut(this.keys.tombstone(record.id), tombstone),
        ],
      );
      if (ok) return;
      const attachment = await this.attachment(record.id);
      if (attachment) {
        throw new ConflictError(
          "volume.attached",
          `volume "${record.spec.name}" is attached on node ${attachment.node}: detach it first`,
          "name",
        );
      }
    }
    throw new OperationError(
      "volume.contended",
      `volume ${record.id} kept changing under the delete; try again`,
    );
  }

  /**
   * Names `node` on the tombstone of volume `id`, so that it may destroy its replica: a purge of a replica no record
   * lists. Refuses if a record lists it (again), in the same transaction.
   */
  async condemn(id: string, node: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const [volume, entry] = await Promise.all([
        this.store.get(this.keys.volume(id)),
        this.store.get(this.keys.tombstone(id)),
      ]);
      const record = volume ? this.volumeOf(volume) : undefined;
      if (record?.replicas.some((r) => r.node === node)) {
        throw new ConflictError(
          "replica.listed",
          `volume "${record.spec.name}" lists the replica on ${node}`,
          "id",
        );
      }
      const current = entry ? this.tombstoneOf(entry) : undefined;
      const tombstone: TombstoneRecord = {
        id,
        name: record?.spec.name ?? current?.name ?? "",
        reason: current?.reason ?? (record ? "removed" : "deleted"),
        nodes: [...new Set([...(current?.nodes ?? []), node])].sort(),
        since: current?.since ?? new Date().toISOString(),
      };
      const ok = await this.store.commit(
        [
          { key: this.keys.volume(id), revision: volume?.revision ?? 0 },
          { key: this.keys.tombstone(id), revision: entry?.revision ?? 0 },
        ],
        [tombstonePut(this.keys.tombstone(id), tombstone)],
      );
      if (ok) return;
    }
    throw new OperationError("volume.contended", `the tombstone of ${id} kept changing; try again`);
  }

  /** Every tombstone that names `node`. */
  async tombstonesOf(node: string): Promise<TombstoneRecord[]> {
    const entries = await this.store.list(this.keys.tombstones);
    return readRecords(TombstoneRecordSchema, entries, this.report, this.tombstoneFiled).filter((t) =>
      t.nodes.includes(node),
    );
  }

  /** Takes `node` off the tombstone of volume `id` (its replica is gone); the last node off removes the tombstone. */
  async release(id: string, node: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.store.get(this.keys.tombstone(id));
      if (!entry) return;
      const tombstone = this.tombstoneOf(entry);
      if (!tombstone.nodes.includes(node)) return;
      const nodes = tombstone.nodes.filter((n) => n !== node);
      const ok = await this.store.commit(
        [{ key: entry.key, revision: entry.revision }],
        [tombstonePut(entry.key, { ...tombstone, nodes })],
      );
      if (ok) return;
    }
    throw new OperationError("volume.contended", `the tombstone of ${id} kept changing; try again`);
  }

  async attachment(id: string): Promise<AttachmentRecord | undefined> {
    const entry = await this.store.get(this.keys.attachment(id));
    return entry ? this.attachmentOf(entry) : undefined;
  }

  /**
   * Takes the attachment for `node` with a new epoch, in one transaction: it fails if anyone holds the
   * attachment, unless `mayTakeOver` says the holder is gone (its node's lease expired), and the epoch is strictly
   * higher than every epoch handed out for this volume before. The compare on the attachment's revision makes the
   * take-over unique too: of two nodes taking over at once, one wins.
   */
  async attach(
    id: string,
    attachment: Omit<AttachmentRecord, "epoch" | "since">,
    mayTakeOver: (holder: AttachmentRecord) => Promise<boolean> = async () => false,
  ): Promise<AttachmentRecord> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.store.get(this.keys.attachment(id));
      if (current) {
        const holder = this.attachmentOf(current);
        if (!(await mayTakeOver(holder))) {
          throw new ConflictError(
            "volume.attached",
            `volume is attached on node ${holder.node}, which is up: detach it there first`,
            "name",
          );
        }
      }
      const epochEntry = await this.store.get(this.keys.epoch(id));
      const epoch = Number(epochEntry?.value ?? 0) + 1;
      const record: AttachmentRecord = { ...attachment, epoch, since: new Date().toISOString() };
      const ok = await this.store.commit(
        [
          { key: this.keys.attachment(id), revision: current?.revision ?? 0 },
          { key: this.keys.epoch(id), revision: epochEntry?.revision ?? 0 },
        ],
        [
          { put: this.keys.attachment(id), value: JSON.stringify(record) },
          { put: this.keys.epoch(id), value: String(epoch) },
        ],
      );
      if (ok) return record;
    }
    throw new OperationError("volume.contended", `volume ${id} attachment kept changing; try again`);
  }

  /**
   * Changes a volume's replica list, only while `epoch` holds its attachment: the in-sync set is the attached
   * engine's to change, and an engine that lost the attachment must not rewrite it.
   */
  async updateReplicas(
    id: string,
    epoch: number,
    change: (replicas: ReplicaRecord[]) => ReplicaRecord[],
  ): Promise<VolumeRecord> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const [volume, attached] = await Promise.all([
        this.store.get(this.keys.volume(id)),
        this.store.get(this.keys.attachment(id)),
      ]);
      if (!volume) throw new NotFoundError("volume", id);
      if (!attached || this.attachmentOf(attached).epoch !== epoch) {
        throw new ConflictError("volume.fenced", `volume ${id} is no longer attached with epoch ${epoch}`);
      }
      const record = this.volumeOf(volume);
      const next = { ...record, replicas: change(record.replicas) };
      // A node dropped from the list is recorded, so that it destroys its replica when it can; a node added back
      // comes off that record, so that its new replica is kept.
      const before = record.replicas.map((r) => r.node);
      const after = next.replicas.map((r) => r.node);
      const tomb = await this.store.get(this.keys.tombstone(id));
      const tombstone = withNodes(
        tomb ? this.tombstoneOf(tomb) : undefined,
        record,
        "removed",
        before.filter((n) => !after.includes(n)),
        after,
      );
      const ok = await this.store.commit(
        [
          { key: volume.key, revision: volume.revision },
          { key: attached.key, revision: attached.revision },
          { key: this.keys.tombstone(id), revision: tomb?.revision ?? 0 },
        ],
        [
          { put: volume.key, value: JSON.stringify(next) },
          ...(tomb || tombstone.nodes.length > 0 ? [tombstonePut(this.keys.tombstone(id), tombstone)] : []),
        ],
      );
      if (ok) return next;
    }
    throw new OperationError("volume.contended", `volume ${id} kept changing under the update; try again`);
  }

  /** Updates this node's attachment (device path, mount point), only while `epoch` still holds it. */
  async updateAttachment(id: string, epoch: number, change: Partial<AttachmentRecord>): Promise<void> {
    const entry = await this.store.get(this.keys.attachment(id));
    const current = entry ? this.attachmentOf(entry) : undefined;
    if (!entry || current?.epoch !== epoch) {
      throw new ConflictError("volume.fenced", `volume ${id} is no longer attached with epoch ${epoch}`);
    }
    await this.store.commit(
      [{ key: entry.key, revision: entry.revision }],
      [{ put: entry.key, value: JSON.stringify({ ...current, ...change }) }],
    );
  }

  /** Releases the attachment if `epoch` still holds it. */
  async detach(id: string, epoch: number): Promise<void> {
    const entry = await this.store.get(this.keys.attachment(id));
    if (!entry || this.attachmentOf(entry).epoch !== epoch) return;
    await this.store.commit([{ key: entry.key, revision: entry.revision }], [{ delete: entry.key }]);
  }

  /** Every attachment held by `node`, e.g. left over by a crashed agent. */
  async attachmentsOf(node: string): Promise<Array<{ id: string; attachment: AttachmentRecord }>> {
    const held: Array<{ id: string; attachment: AttachmentRecord }> = [];
    for (const entry of await this.store.list(this.keys.attachments)) {
      const id = entry.key.slice(this.keys.attachments.length);
      if (!VolumeId.safeParse(id).success) {
        this.report(new BadRecordError(entry.key, "filed under a key that is not a volume id"));
        continue;
      }
      for (const attachment of readRecords(AttachmentRecordSchema, [entry], this.report)) {
        if (attachment.node === node) held.push({ id, attachment });
      }
    }
    return held;
  }
}
