import { readdir, readFile, rm, stat, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { VolumeId } from "../contracts/index.js";
import { InputError, NotFoundError, OperationError } from "../errors.js";
import { Replica } from "../replica/index.js";

/**
 * The directory of a volume's replica in a pool. The one place an id becomes a path, so the one place it is
 * checked: an id from the store or a peer that is not plain hex (`../../etc`) never reaches the file system.
 */
export function replicaDir(pool: string, volumeId: string): string {
  if (!VolumeId.safeParse(volumeId).success) {
    throw new InputError(
      "replica.bad_id",
      `a volume id must be hex, not ${JSON.stringify(volumeId)}`,
      "volumeId",
    );
  }
  return join(pool, "replicas", volumeId);
}

/**
 * The file that marks a replica quarantined. A mark, not a move: the replica stays byte for byte where an engine
 * looks for it, so one that a record lists after all (its record was written after this node started) is served
 * and un-marked, with nothing to move back.
 */
const QUARANTINE_MARK = "quarantined.json";

/** Bytes in a pool's file system, and bytes available to the agent. */
export async function poolSpace(pool: string): Promise<{ total: number; free: number }> {
  const s = await statfs(pool);
  return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
}

interface Open {
  replica: Promise<Replica>;
  users: number;
}

/**
 * This node's replicas, opened at most once each: the local engine and the replication port (engines on other
 * nodes) share one Replica object, so its allocation map, activity log and highest epoch stay one truth.
 */
export class LocalReplicas {
  private readonly open = new Map<string, Open>();

  constructor(
    /** Storage pool directories. */
    readonly pools: string[],
  ) {}

  /** Opens (or shares) the replica of `volumeId`; each acquire needs one release. */
  acquire(volumeId: string): Promise<Replica> {
    let entry = this.open.get(volumeId);
    if (!entry) {
      const replica = this.find(volumeId).then((dir) => Replica.open(dir));
      entry = { replica, users: 0 };
      this.open.set(volumeId, entry);
      const opened = entry;
      replica.catch(() => {
        if (this.open.get(volumeId) === opened) this.open.delete(volumeId);
      });
    }
    entry.users++;
    return entry.replica;
  }

  /** Gives back one acquire; the last one closes the replica. */
  async release(volumeId: string): Promise<void> {
    const entry = this.open.get(volumeId);
    if (!entry || --entry.users > 0) return;
    this.open.delete(volumeId);
    await (await entry.replica.catch(() => undefined))?.close();
  }

  isOpen(volumeId: string): boolean {
    return this.open.has(volumeId);
  }

  /** Creates a replica in the pool with the most free space. */
  async create(spec: { volumeId: string; size: number; blockSize: number }): Promise<{ pool: string }> {
    const pool = await this.choosePool();
    try {
      const replica = await Replica.create(replicaDir(pool, spec.volumeId), spec);
      await replica.close();
    } catch (err) {
      throw new OperationError("replica.create", `cannot create the replica in ${pool}: ${String(err)}`, err);
    }
    return { pool };
  }

  /** Deletes the replica of `volumeId` from whichever pool holds it (nothing if none does). */
  async destroy(volumeId: string): Promise<void> {
    if (this.open.has(volumeId)) {
      throw new OperationError("replica.busy", `replica ${volumeId} is in use on this node`);
    }
    for (const pool of this.pools) await Replica.destroy(replicaDir(pool, volumeId));
  }

  /** Marks the replica of `volumeId` quarantined, if it is not yet; answers its pool and since when it is. */
  async quarantine(volumeId: string): Promise<{ pool: string; since: string }> {
    const pool = await this.poolOf(volumeId);
    const since = (await this.quarantinedSince(volumeId)) ?? new Date().toISOString();
    await writeFile(join(replicaDir(pool, volumeId), QUARANTINE_MARK), JSON.stringify({ since }));
    return { pool, since };
  }

  /** When the replica of `volumeId` was quarantined, or undefined if it is not (or does not exist). */
  async quarantinedSince(volumeId: string): Promise<string | undefined> {
    for (const pool of this.pools) {
      const mark = await readFile(join(replicaDir(pool, volumeId), QUARANTINE_MARK), "utf8").catch(
        () => undefined,
      );
      if (mark !== undefined) return (JSON.parse(mark) as { since: string }).since;
    }
    return undefined;
  }

  /** Takes the quarantine mark off the replica of `volumeId`: a record lists it. */
  async unquarantine(volumeId: string): Promise<void> {
    for (const pool of this.pools)
      await rm(join(replicaDir(pool, volumeId), QUARANTINE_MARK), { force: true });
  }

  /** Ids of every replica in this node's pools. */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    for (const pool of this.pools) {
      // Only what replicaDir could have made: anything else in the directory is not a replica.
      const names = await readdir(join(pool, "replicas")).catch(() => [] as string[]);
      ids.push(...names.filter((name) => VolumeId.safeParse(name).success));
    }
    return ids;
  }

  /** Bytes on disk of the replica of `volumeId`, read from its files without opening it. */
  async bytesOnDisk(volumeId: string): Promise<number | undefined> {
    const dir = await this.find(volumeId).catch(() => undefined);
    return dir ? Replica.bytesOnDisk(dir).catch(() => undefined) : undefined;
  }

  /** Capacity of this node's pools. */
  async capacity(): Promise<{ total: number; free: number }> {
    let total = 0;
    let free = 0;
    for (const pool of this.pools) {
      const space = await poolSpace(pool);
      total += space.total;
      free += space.free;
    }
    return { total, free };
  }

  /** The pool whose replicas directory has an entry `volumeId`, whole replica or not (an interrupted create). */
  async poolOf(volumeId: string): Promise<string> {
    for (const pool of this.pools) {
      if (
        await stat(replicaDir(pool, volumeId)).then(
          (s) => s.isDirectory(),
          () => false,
        )
      )
        return pool;
    }
    throw new NotFoundError("replica", volumeId);
  }

  private async find(volumeId: string): Promise<string> {
    for (const pool of this.pools) {
      const dir = replicaDir(pool, volumeId);
      if (await Replica.exists(dir)) return dir;
    }
    throw new NotFoundError("replica", volumeId);
  }

  private async choosePool(): Promise<string> {
    let best: { pool: string; free: number } | undefined;
    for (const pool of this.pools) {
      const space = await poolSpace(pool).catch(() => undefined);
      if (space && (!best || space.free > best.free)) best = { pool, free: space.free };
    }
    if (!best) throw new OperationError("pool.none", `no usable storage pool among ${this.pools.join(", ")}`);
    return best.pool;
  }
}
