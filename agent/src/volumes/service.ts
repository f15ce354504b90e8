import { statfs } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { ConflictError, OperationError, SpecError } from "../errors.js";
import { cleanupStale } from "../frontend/index.js";
import { Replica } from "../replica/index.js";
import { type PartialVolumeSpec, withDefaults } from "../spec/index.js";
import type { VolumeCatalog } from "./catalog.js";
import { LocalVolumes, replicaDir } from "./local-volumes.js";
import type { VolumeRecord } from "./records.js";
import { canonicalSpec, type VolumeView, viewOf } from "./view.js";

export interface VolumeServiceOptions {
  /** This node's id. */
  nodeId: string;
  /** Storage pools on this node. */
  pools: string[];
  /** Directory for NBD sockets and FUSE mounts. */
  runDir: string;
  /** Default parent of mount points. */
  mountDir: string;
  catalog: VolumeCatalog;
  logger: Logger;
}

/** What the API and the CLI call: the volume lifecycle on this node. */
export class VolumeService {
  readonly local: LocalVolumes;

  constructor(private readonly options: VolumeServiceOptions) {
    this.local = new LocalVolumes(options);
  }

  /**
   * Releases attachments and host devices a killed agent left behind on this node: its engines are gone,
   * so the volumes are not served; they must be attachable again.
   */
  async recover(): Promise<void> {
    await cleanupStale(join(this.options.runDir, "fuse"));
    for (const { id, attachment } of await this.options.catalog.attachmentsOf(this.options.nodeId)) {
      this.options.logger.warn({ volume: id, epoch: attachment.epoch }, "releasing a stale attachment");
      await this.options.catalog.detach(id, attachment.epoch);
    }
  }

  async create(partial: PartialVolumeSpec): Promise<VolumeView> {
    const spec = withDefaults(partial);
    if (spec.repl > 1) {
      throw new SpecError(
        "repl",
        `repl=${spec.repl} needs replication across nodes, which this agent does not do yet`,
      );
    }
    if (spec.nodes.length > 0 && !spec.nodes.includes(this.options.nodeId)) {
      throw new SpecError("nodes", `none of ${spec.nodes.join(";")} is this node (${this.options.nodeId})`);
    }
    const pool = await this.choosePool();
    const record = await this.options.catalog.create(spec, [
      { node: this.options.nodeId, pool, state: "in-sync" },
    ]);
    try {
      const replica = await Replica.create(replicaDir(pool, record.id), {
        volumeId: record.id,
        size: spec.size,
        blockSize: spec.blockSize,
      });
      await replica.close();
    } catch (err) {
      await this.options.catalog.remove(record).catch(() => undefined);
      throw new OperationError("replica.create", `cannot create the replica in ${pool}: ${String(err)}`, err);
    }
    this.options.logger.info({ volume: spec.name, spec: canonicalSpec(spec) }, "volume created");
    return this.view(record);
  }

  async list(): Promise<VolumeView[]> {
    const records = await this.options.catalog.list();
    return Promise.all(records.map((r) => this.view(r)));
  }

  async inspect(name: string): Promise<VolumeView> {
    return this.view(await this.options.catalog.get(name));
  }

  async delete(name: string): Promise<void> {
    const record = await this.options.catalog.get(name);
    await this.local.serialize(record.id, async () => {
      await this.options.catalog.remove(record);
      for (const r of record.replicas) {
        if (r.node === this.options.nodeId) await Replica.destroy(replicaDir(r.pool, record.id));
      }
    });
    this.options.logger.info({ volume: record.spec.name }, "volume deleted");
  }

  async attach(name: string): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    await this.local.serialize(record.id, () => this.local.attach(record));
    return this.view(record);
  }

  async detach(name: string): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    await this.local.serialize(record.id, async () => {
      const entry = this.local.get(record.id);
      if (!entry) {
        const attachment = await this.options.catalog.attachment(record.id);
        if (attachment) {
          throw new ConflictError(
            "volume.attached_elsewhere",
            `volume "${name}" is attached on ${attachment.node}`,
          );
        }
        return;
      }
      if (entry.attachment.mountPath) {
        throw new ConflictError(
          "volume.mounted",
          `volume "${name}" is mounted at ${entry.attachment.mountPath}: unmount it first`,
          "name",
        );
      }
      await this.local.detach(record.id);
    });
    return this.view(record);
  }

  /** Attaches (if needed), makes the file system on first use, and mounts at `path` (or the default). */
  async mount(name: string, path?: string): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    const target = resolve(path ?? join(this.options.mountDir, record.spec.name));
    await this.local.serialize(record.id, async () => {
      const wasAttached = this.local.get(record.id) !== undefined;
      await this.local.attach(record);
      try {
        await this.local.mount(record.id, target);
      } catch (err) {
        if (!wasAttached) await this.local.detach(record.id).catch(() => undefined);
        throw err;
      }
    });
    return this.view(record);
  }

  /** Unmounts and detaches: reverses every step of `mount`. */
  async unmount(name: string): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    await this.local.serialize(record.id, async () => {
      if (!this.local.get(record.id)) {
        throw new ConflictError("volume.not_mounted", `volume "${name}" is not mounted on this node`, "name");
      }
      // Detaching closes the host block device first: unmount, loop device, FUSE file.
      await this.local.detach(record.id);
    });
    return this.view(record);
  }

  /** Grows a volume (never shrinks), online when it is attached here. */
  async resize(name: string, size: number): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    if (size < record.spec.size) {
      throw new SpecError(
        "size",
        `cannot shrink from ${record.spec.size} to ${size} bytes: volumes only grow`,
      );
    }
    if (size % record.spec.blockSize !== 0) {
      throw new SpecError("size", `must be a multiple of the block size (${record.spec.blockSize} bytes)`);
    }
    const updated = await this.local.serialize(record.id, async () => {
      if (this.local.get(record.id)) {
        await this.local.grow(record.id, size);
      } else {
        const attachment = await this.options.catalog.attachment(record.id);
        if (attachment) {
          throw new ConflictError(
            "volume.attached_elsewhere",
            `volume "${name}" is attached on ${attachment.node}`,
          );
        }
        for (const r of record.replicas.filter((x) => x.node === this.options.nodeId)) {
          const replica = await Replica.open(replicaDir(r.pool, record.id));
          try {
            await replica.grow(size);
          } finally {
            await replica.close();
          }
        }
      }
      return this.options.catalog.update(record.id, (r) => ({ ...r, spec: { ...r.spec, size } }));
    });
    return this.view(updated);
  }

  /** Capacity of this node's pools. */
  async capacity(): Promise<{ total: number; free: number }> {
    let total = 0;
    let free = 0;
    for (const pool of this.options.pools) {
      const space = await poolSpace(pool);
      total += space.total;
      free += space.free;
    }
    return { total, free };
  }

  async shutdown(): Promise<void> {
    await this.local.detachAll();
  }

  private async choosePool(): Promise<string> {
    let best: { pool: string; free: number } | undefined;
    for (const pool of this.options.pools) {
      const space = await poolSpace(pool).catch(() => undefined);
      if (space && (!best || space.free > best.free)) best = { pool, free: space.free };
    }
    if (!best)
      throw new OperationError("pool.none", `no usable storage pool among ${this.options.pools.join(", ")}`);
    return best.pool;
  }

  private async view(record: VolumeRecord): Promise<VolumeView> {
    const attachment = await this.options.catalog.attachment(record.id);
    return viewOf(record, attachment, await this.replicaUsage(record));
  }

  /** Bytes on disk of this node's replicas of `record`, by pool; read from the files, without opening them. */
  private async replicaUsage(record: VolumeRecord): Promise<Map<string, number>> {
    const usage = new Map<string, number>();
    for (const r of record.replicas.filter((x) => x.node === this.options.nodeId)) {
      const bytes = await Replica.bytesOnDisk(replicaDir(r.pool, record.id)).catch(() => undefined);
      if (bytes !== undefined) usage.set(r.pool, bytes);
    }
    return usage;
  }
}

/** Bytes in a pool's file system, and bytes available to the agent. */
async function poolSpace(pool: string): Promise<{ total: number; free: number }> {
  const s = await statfs(pool);
  return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
}
