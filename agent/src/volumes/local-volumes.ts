import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Engine } from "../engine/index.js";
import { ConflictError, SpecError } from "../errors.js";
import { type ExposedVolume, exposeVolume } from "../frontend/index.js";
import { NbdServer } from "../frontend/nbd/index.js";
import { IoShares, type IoTuning, TunedDevice } from "../io-tuning/index.js";
import type { VolumeCatalog } from "./catalog.js";
import type { AttachmentRecord, VolumeRecord } from "./records.js";
import type { ReplicaAccess } from "./replica-access.js";
import { ReplicaSet } from "./replica-set.js";

/** A unix socket path must fit in sockaddr_un (108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * A volume attached on this node: its engine, the tuned device its frontends serve (the engine behind its I/O
 * profile and priority), its NBD server, and its host block device once exposed.
 */
interface Attached {
  record: VolumeRecord;
  attachment: AttachmentRecord;
  replicas: ReplicaSet;
  /** For engine-only work (grow, check, resync); frontends get `device`. */
  engine: Engine;
  device: TunedDevice;
  nbd: NbdServer;
  exposed?: ExposedVolume;
}

export interface LocalVolumesOptions {
  /** This node's id. */
  nodeId: string;
  /** Directory for NBD sockets and FUSE mounts. */
  runDir: string;
  /** Default parent of mount points. */
  mountDir: string;
  catalog: VolumeCatalog;
  access: ReplicaAccess;
  /** How long a replica's node may stay down before its replicas are rebuilt elsewhere. */
  replicaTimeoutMs: number;
  logger: Logger;
  /**
   * Requests in flight to the engines of all volumes attached here at once; past it, volumes take turns by priority.
   * @default 32
   */
  ioSlots?: number;
}

/**
 * The data plane on this node: opens the local replicas of an attached volume, runs its engine and NBD
 * server, and exposes and mounts it. One operation at a time per volume.
 */
export class LocalVolumes {
  private readonly attached = new Map<string, Attached>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** One for the node: every attached volume's requests draw from the same slots. */
  private readonly shares: IoShares;

  constructor(private readonly options: LocalVolumesOptions) {
    this.shares = new IoShares({ limit: options.ioSlots });
  }

  /** The local state of an attached volume, if it is attached here. */
  get(id: string): Attached | undefined {
    return this.attached.get(id);
  }

  /** Every volume attached here. */
  list(): Attached[] {
    return [...this.attached.values()];
  }

  /** Runs `fn` after every earlier operation on volume `id` has finished. */
  serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    const settled = next.catch(() => undefined);
    this.locks.set(id, settled);
    void settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    });
    return next;
  }

  /**
   * Attaches `record` on this node (idempotent here), taking the attachment with a new epoch. It takes over an
   * attachment held by a node that is down (its lease expired): that node's engine is fenced by the new epoch on
   * every replica. An attachment held by a live node is refused.
   */
  async attach(record: VolumeRecord): Promise<Attached> {
    const existing = this.attached.get(record.id);
    if (existing && !existing.engine.isStopped) return existing;
    // A fenced engine (another node took the volume over meanwhile) is let go here before attaching anew.
    if (existing) await this.release(existing);
    const { catalog, nodeId, runDir, access, logger } = this.options;
    const nbdSocket = join(runDir, "nbd", `${record.spec.name}.sock`);
    if (Buffer.byteLength(nbdSocket) > MAX_SOCKET_PATH) {
      throw new SpecError(
        "dataDir",
        `socket path ${nbdSocket} is too long for a unix socket: use a shorter dataDir`,
      );
    }
    const attachment = await catalog.attach(record.id, { node: nodeId, nbdSocket }, async (holder) => {
      const node = (await access.nodes()).find((n) => n.id === holder.node);
      if (holder.node === nodeId || node?.state === "up") return false;
      logger.warn(
        { volume: record.spec.name, from: holder.node, epoch: holder.epoch },
        "taking over from a down node",
      );
      return true;
    });
    let replicas: ReplicaSet | undefined;
    let device: TunedDevice | undefined;
    let nbd: NbdServer | undefined;
    try {
      replicas = await ReplicaSet.open({
        record,
        attachment,
        access,
        catalog,
        logger,
        replicaTimeoutMs: this.options.replicaTimeoutMs,
        onRecord: (fresh) => this.retune(record.id, fresh.spec),
      });
      const engine = replicas.engine;
      device = new TunedDevice({
        device: engine,
        shares: this.shares,
        ioProfile: record.spec.ioProfile,
        ioPriority: record.spec.ioPriority,
      });
      await mkdir(join(runDir, "nbd"), { recursive: true, mode: 0o700 });
      nbd = new NbdServer({
        device,
        exportName: record.spec.name,
        socketPath: nbdSocket,
        logger: logger.child({ volume: record.spec.name }),
      });
      await nbd.listen();
      const entry: Attached = { record, attachment, replicas, engine, device, nbd };
      this.attached.set(record.id, entry);
      logger.info({ volume: record.spec.name, epoch: attachment.epoch }, "volume attached");
      return entry;
    } catch (err) {
      await nbd?.close().catch(() => undefined);
      device?.close();
      await replicas?.close().catch(() => undefined);
      await catalog.detach(record.id, attachment.epoch);
      throw err;
    }
  }

  /**
   * One repair pass on every volume attached here: resync, rebuild, match the replication factor, and apply an
   * io_profile or io_priority changed through another node's API. The volumes' passes run side by side: one waiting on a node that does not answer must not hold up the others.
   */
  async repairAll(): Promise<void> {
    if (this.attached.size === 0) return;
    const nodes = await this.options.access.nodes().catch((err) => {
      this.options.logger.warn({ err: String(err) }, "repair pass skipped: cannot list the nodes");
      return undefined;
    });
    if (!nodes) return;
    await Promise.all(
      [...this.attached].map(([id, entry]) =>
        entry.replicas
          .repair(nodes)
          .catch((err) =>
            this.options.logger.warn({ volume: id, err: String(err) }, "repair pass failed; will retry"),
          ),
      ),
    );
  }

  /**
   * Applies a volume's new io_profile and io_priority to its I/O here, while it runs; a no-op where the volume is
   * not attached. The record kept here follows, so the repair pass does not apply it again.
   */
  retune(id: string, spec: IoTuning): void {
    const entry = this.attached.get(id);
    if (!entry) return;
    const { ioProfile, ioPriority } = spec;
    const current = entry.device.current;
    if (current.ioProfile === ioProfile && current.ioPriority === ioPriority) return;
    entry.device.retune({ ioProfile, ioPriority });
    entry.record = { ...entry.record, spec: { ...entry.record.spec, ioProfile, ioPriority } };
    this.options.logger.info({ volume: entry.record.spec.name, ioProfile, ioPriority }, "volume retuned");
  }

  /** Exposes an attached volume as a host block device and mounts its file system at `target`. */
  async mount(id: string, target: string): Promise<Attached> {
    const entry = this.mustGet(id);
    const { spec } = entry.record;
    if (entry.attachment.mountPath) {
      if (entry.attachment.mountPath === target) return entry;
      throw new ConflictError(
        "volume.mounted",
        `volume "${spec.name}" is already mounted at ${entry.attachment.mountPath}`,
        "path",
      );
    }
    if (spec.fs === "none") {
      throw new SpecError(
        "fs",
        `volume "${spec.name}" has no file system (fs=none): use its block device instead`,
      );
    }
    const exposed = await this.expose(entry);
    await exposed.mount(target);
    entry.attachment = { ...entry.attachment, mountPath: target };
    await this.options.catalog.updateAttachment(id, entry.attachment.epoch, { mountPath: target });
    return entry;
  }

  /** Stops serving the volume here: unmounts, stops the NBD server, flushes, and releases the attachment. */
  async detach(id: string): Promise<void> {
    const entry = this.attached.get(id);
    if (!entry) return;
    await this.release(entry);
    await this.options.catalog.detach(id, entry.attachment.epoch);
    this.options.logger.info({ volume: entry.record.spec.name }, "volume detached");
  }

  /** Lets go of everything this node holds for an attached volume: mount, device, NBD server, engine, replicas. */
  private async release(entry: Attached): Promise<void> {
    if (entry.exposed) await entry.exposed.close();
    await entry.nbd.close();
    await entry.engine
      .stop()
      .catch((err) =>
        this.options.logger.warn({ volume: entry.record.spec.name, err: String(err) }, "final flush failed"),
      );
    entry.device.close();
    await entry.replicas.close();
    this.attached.delete(entry.record.id);
  }

  /** Grows an attached volume and, when mounted, its file system. */
  async grow(id: string, size: number): Promise<void> {
    const entry = this.mustGet(id);
    await entry.engine.grow(size);
    if (entry.exposed) await entry.exposed.grow(size);
  }

  /** Detaches every volume attached here (agent shutdown). */
  async detachAll(): Promise<void> {
    for (const id of [...this.attached.keys()]) {
      await this.serialize(id, () => this.detach(id)).catch((err) =>
        this.options.logger.error({ err, volume: id }, "detach at shutdown failed"),
      );
    }
  }

  private async expose(entry: Attached): Promise<ExposedVolume> {
    if (entry.exposed) return entry.exposed;
    const exposed = await exposeVolume({
      name: entry.record.spec.name,
      device: entry.device,
      fuseDir: join(this.options.runDir, "fuse"),
      fs: entry.record.spec.fs,
      nbdSocket: entry.attachment.nbdSocket,
      logger: this.options.logger.child({ volume: entry.record.spec.name }),
    });
    entry.exposed = exposed;
    entry.attachment = { ...entry.attachment, devicePath: exposed.devicePath };
    await this.options.catalog.updateAttachment(entry.record.id, entry.attachment.epoch, {
      devicePath: exposed.devicePath,
    });
    return exposed;
  }

  private mustGet(id: string): Attached {
    const entry = this.attached.get(id);
    if (!entry)
      throw new ConflictError("volume.not_attached", `volume ${id} is not attached on this node`, "name");
    return entry;
  }
}
