import { realpath } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import type { Logger } from "pino";
import { placementFor, placeReplicas } from "../cluster/index.js";
import type { ResyncProgress } from "../engine/index.js";
import { ConflictError, NotFoundError, SpecError } from "../errors.js";
import { cleanupStale } from "../frontend/index.js";
import type { NodeIdentity } from "../transport/index.js";
import {
  effectiveChange,
  type PartialVolumeSpec,
  type VolumeChange,
  withDefaults,
} from "../volume-spec/index.js";
import type { VolumeCatalog } from "./catalog.js";
import type { LocalReplicas } from "./local-replicas.js";
import { LocalVolumes } from "./local-volumes.js";
import type { ReplicaRecord, VolumeRecord } from "./records.js";
import type { ReplicaAccess } from "./replica-access.js";
import { canonicalSpec, type VolumeView, viewOf } from "./view.js";
import { checkSetName, memberName, memberSpec, membersOf, type VolumeSetView } from "./volume-set.js";

export interface VolumeServiceOptions {
  /** This node's id. */
  nodeId: string;
  /** This node's replicas. */
  replicas: LocalReplicas;
  /** How this node reaches every node's replicas. */
  access: ReplicaAccess;
  /** Directory for NBD sockets and FUSE mounts. */
  runDir: string;
  /** Default parent of mount points. */
  mountDir: string;
  /** How long a replica's node may stay down before its replicas are rebuilt elsewhere. @default 600000 */
  replicaTimeoutMs?: number;
  catalog: VolumeCatalog;
  logger: Logger;
}

/** A volume attached on this node, as /metrics shows it. */
export interface AttachedHere {
  name: string;
  /** The replication factor asked for. */
  repl: number;
  /** Replicas the engine writes to now. */
  inSync: number;
  /** Resyncs and rebuilds in progress, by the node of the replica. */
  resync: ReadonlyMap<string, ResyncProgress>;
}

/** What the API and the CLI call: the volume lifecycle, from any node of the cluster. */
export class VolumeService {
  private readonly local: LocalVolumes;

  constructor(private readonly options: VolumeServiceOptions) {
    this.local = new LocalVolumes({ ...options, replicaTimeoutMs: options.replicaTimeoutMs ?? 600_000 });
  }

  /** The volumes attached on this node, read fresh at each call. */
  attachedHere(): AttachedHere[] {
    return this.local.list().map((v) => ({
      name: v.record.spec.name,
      repl: v.record.spec.repl,
      inSync: v.engine.inSync.length,
      resync: v.replicas.resyncProgress(),
    }));
  }

  /** One pass of repair (resync, rebuild, replication factor) over the volumes attached here. */
  repairAll(): Promise<void> {
    return this.local.repairAll();
  }

  /** This node's replication certificate as in use (renewals replace it in place), for /metrics. */
  get nodeIdentity(): NodeIdentity | undefined {
    return this.options.access.identity;
  }

  /**
   * Releases attachments and host devices a killed agent left behind on this node (its engines are gone, so the
   * volumes are not served and must be attachable again). Replicas no volume lists are Recovery's (recovery.ts): kept
   * in quarantine, never deleted here.
   */
  async recover(): Promise<void> {
    const { catalog, nodeId, logger } = this.options;
    await cleanupStale(join(this.options.runDir, "fuse"));
    for (const { id, attachment } of await catalog.attachmentsOf(nodeId)) {
      logger.warn({ volume: id, epoch: attachment.epoch }, "releasing a stale attachment");
      await catalog.detach(id, attachment.epoch);
    }
  }

  /** Creates a volume with its replicas placed across the cluster's nodes (see placeReplicas). */
  async create(partial: PartialVolumeSpec): Promise<VolumeView> {
    const spec = withDefaults(partial);
    const { catalog, access, logger } = this.options;
    if (await catalog.find(spec.name)) {
      throw new ConflictError("volume.exists", `volume "${spec.name}" already exists`, "name");
    }
    const nodes = await access.nodes();
    const placed = placeReplicas(nodes, placementFor(spec, spec.repl));
    const volumeId = catalog.newId();
    const replicas: ReplicaRecord[] = [];
    try {
      for (const node of placed) {
        const { pool } = await access.create(node.id, {
          volumeId,
          size: spec.size,
          blockSize: spec.blockSize,
        });
        replicas.push({ node: node.id, pool, state: "in-sync" });
      }
      const record = await catalog.create(spec, replicas, volumeId);
      logger.info(
        { volume: spec.name, spec: canonicalSpec(spec), nodes: replicas.map((r) => r.node) },
        "volume created",
      );
      return this.view(record);
    } catch (err) {
      for (const r of replicas) await access.destroy(r.node, volumeId).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Creates a set (scale > 1): every member, `NAME.1` to `NAME.N`, each placed as create places one volume. Refused
   * when a volume has the set's name or any member's; a member that fails to be made takes the ones made before
   * it with it, so a set is all there or not at all.
   */
  async createSet(partial: PartialVolumeSpec): Promise<VolumeSetView> {
    const scale = partial.scale ?? 1;
    if (scale < 2) throw new SpecError("scale", `must be more than 1 for a set, not ${scale}`);
    checkSetName(partial);
    const set = { ...partial, scale };
    const names = [set.name, ...Array.from({ length: scale }, (_, i) => memberName(set.name, i + 1))];
    for (const name of names) {
      if (await this.options.catalog.find(name)) {
        throw new ConflictError("volume.exists", `volume "${name}" already exists`, "name");
      }
    }
    const members: VolumeView[] = [];
    try {
      for (let i = 1; i <= scale; i++) members.push(await this.create(memberSpec(set, i)));
    } catch (err) {
      for (const m of members) await this.delete(m.name).catch(() => undefined);
      throw err;
    }
    return { name: set.name, scale, members };
  }

  /** The set called `name`: its members as they are (NotFoundError when it has none). */
  async inspectSet(name: string): Promise<VolumeSetView> {
    const volumes = await this.list();
    const first = volumes.find((v) => v.name === memberName(name, 1));
    const members = first ? membersOf(volumes, name, first.scale) : [];
    if (!first || first.scale < 2) throw new NotFoundError("volume_set", name);
    return { name, scale: first.scale, members };
  }

  /** Deletes every member of a set; refused, deleting nothing, while any member is attached. */
  async deleteSet(name: string): Promise<void> {
    const { members } = await this.inspectSet(name);
    const busy = members.filter((m) => m.attachedOn !== null);
    if (busy.length > 0) {
      const where = busy.map((m) => `${m.name} on ${m.attachedOn}`).join(", ");
      throw new ConflictError(
        "volume.attached",
        `set "${name}" has volumes in use: ${where}; unmount them first`,
        "name",
      );
    }
    for (const m of members) await this.delete(m.name);
  }

  async list(): Promise<VolumeView[]> {
    const records = await this.options.catalog.list();
    return Promise.all(records.map((r) => this.view(r)));
  }

  async inspect(name: string): Promise<VolumeView> {
    return this.view(await this.options.catalog.get(name));
  }

  /**
   * Deletes a detached volume and every replica of it that can be reached. The record goes with a tombstone naming
   * every replica's node; each replica destroyed takes its node off, and a node that was unreachable destroys its
   * replica when it finds the tombstone (recovery.ts).
   */
  async delete(name: string): Promise<void> {
    const record = await this.options.catalog.get(name);
    await this.local.serialize(record.id, async () => {
      await this.options.catalog.remove(record);
      for (const r of record.replicas) {
        await this.options.access
          .destroy(r.node, record.id)
          .then(() => this.options.catalog.release(record.id, r.node))
          .catch((err) =>
            this.options.logger.warn(
              { volume: name, node: r.node, err: String(err) },
              "replica not deleted now; its node deletes it when it starts",
            ),
          );
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

  /**
   * Attaches (if needed), makes the file system on first use, and mounts at `path` (or the default, in the mount
   * root). A path must resolve inside the mount root, symbolic links followed, unless `anywhere`: CSI's staging paths
   * are kubelet's, asked for over its host-local socket.
   */
  async mount(name: string, path?: string, options: { anywhere?: boolean } = {}): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    const { mountDir } = this.options;
    const target =
      path === undefined
        ? join(mountDir, record.spec.name)
        : options.anywhere
          ? resolve(path)
          : await insideMountRoot(mountDir, path);
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
  resize(name: string, size: number): Promise<VolumeView> {
    return this.update(name, { size });
  }

  /**
   * Changes a volume in place: any key, as long as only `online` ones differ from the volume (effectiveChange).
   * Size and replication need the engine: where the volume is attached here they go through it; where it is
   * detached this node attaches it for the change; where it is attached on another node, a new `repl` is recorded
   * and that node's engine adds or removes replicas on its next repair pass. I/O tuning applies at once here, and
   * on another node at its next repair pass.
   */
  async update(name: string, asked: VolumeChange): Promise<VolumeView> {
    const record = await this.options.catalog.get(name);
    const { size, repl, ...recordOnly } = effectiveChange(record.spec, asked);
    if (size !== undefined) {
      if (size < record.spec.size) {
        throw new SpecError(
          "size",
          `cannot shrink from ${record.spec.size} to ${size} bytes: volumes only grow`,
        );
      }
      if (size % record.spec.blockSize !== 0) {
        throw new SpecError("size", `must be a multiple of the block size (${record.spec.blockSize} bytes)`);
      }
    }
    const updated = await this.local.serialize(record.id, async () => {
      const here = this.local.get(record.id);
      const attachment = here ? undefined : await this.options.catalog.attachment(record.id);
      if (attachment && size !== undefined) {
        throw new ConflictError(
          "volume.attached_elsewhere",
          `volume "${name}" is attached on ${attachment.node}: resize it there`,
          "name",
        );
      }
      const next = await this.options.catalog.update(record.id, (r) => ({
        ...r,
        spec: { ...r.spec, ...recordOnly, ...(repl !== undefined && { repl }) },
      }));
      if (here) this.local.retune(record.id, next.spec);
      if ((size === undefined && repl === undefined) || attachment) return next;
      const entry = here ?? (await this.local.attach(next));
      try {
        if (size !== undefined) await this.local.grow(record.id, size);
        entry.record = next;
        await entry.replicas.repair();
      } finally {
        if (!here) await this.local.detach(record.id);
      }
      return size === undefined
        ? next
        : this.options.catalog.update(record.id, (r) => ({ ...r, spec: { ...r.spec, size } }));
    });
    return this.view(updated);
  }

  /**
   * Compares every in-sync replica region by region; answers where they differ (an empty list: identical). On the
   * node where the volume is attached the comparison goes through its engine, between writes; a detached volume is
   * attached here for the check.
   */
  async check(
    name: string,
  ): Promise<{ name: string; replicas: string[]; regions: number; differing: number[] }> {
    const record = await this.options.catalog.get(name);
    return this.local.serialize(record.id, async () => {
      const here = this.local.get(record.id);
      const entry = here ?? (await this.local.attach(record));
      try {
        const differing = await entry.engine.check();
        const inSync = (await this.options.catalog.get(record.id)).replicas.filter(
          (r) => r.state === "in-sync",
        );
        return {
          name: record.spec.name,
          replicas: inSync.map((r) => r.node),
          regions: entry.engine.regionCount,
          differing,
        };
      } finally {
        if (!here) await this.local.detach(record.id);
      }
    });
  }

  async shutdown(): Promise<void> {
    await this.local.detachAll();
  }

  private async view(record: VolumeRecord): Promise<VolumeView> {
    const attachment = await this.options.catalog.attachment(record.id);
    const progress = this.local.get(record.id)?.replicas.resyncProgress();
    const usage = new Map<string, number>();
    for (const r of record.replicas.filter((x) => x.node === this.options.nodeId)) {
      const bytes = await this.options.replicas.bytesOnDisk(record.id);
      if (bytes !== undefined) usage.set(r.node, bytes);
    }
    return viewOf(record, attachment, usage, progress);
  }
}

/** `path` with its symbolic links resolved, if that is strictly inside `root`; a SpecError on `path` if not. */
async function insideMountRoot(root: string, path: string): Promise<string> {
  const realRoot = await realpath(root);
  // The deepest part of the path that exists, resolved; the parts still to be made cannot be links yet.
  const asked = resolve(realRoot, path);
  let existing = asked;
  const toMake: string[] = [];
  let real: string | undefined;
  while (real === undefined) {
    try {
      real = await realpath(existing);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || existing === dirname(existing)) throw err;
      toMake.unshift(basename(existing));
      existing = dirname(existing);
    }
  }
  const target = join(real, ...toMake);
  if (!target.startsWith(realRoot + sep)) {
    throw new SpecError(
      "path",
      `must be inside the mount root ${root} (--mount-dir), not ${path}${target === asked ? "" : ` (it resolves to ${target})`}`,
    );
  }
  return target;
}
