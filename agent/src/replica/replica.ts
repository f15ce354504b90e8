import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { promisify } from "node:util";
import type { BlockDevice } from "../engine/block-device.js";
import { ConflictError, OperationError } from "../errors.js";
import { ActivityLog } from "./activity-log.js";
import { BitmapFile } from "./bitmap-file.js";
import { closeFile, openFile, readAt, syncAll, syncData, writeAt } from "./file-io.js";
import { inlineIo } from "./inline-io.js";
import { CLUSTER_SIZE, REGION_SIZE, ReplicaManifest, replicaPaths } from "./layout.js";

const run = promisify(execFile);
/** Zeroing ranges at least this long punches a hole instead of writing zeros. */
const PUNCH_THRESHOLD = 1024 * 1024;
const ZEROS = Buffer.alloc(PUNCH_THRESHOLD);
const zeroChecksums = new Map<number, string>();

/** The checksum of `length` zero bytes, as {@link Replica.regionChecksum} computes it. */
export function zeroChecksum(length: number): string {
  let sum = zeroChecksums.get(length);
  if (!sum) {
    sum = createHash("sha256").update(Buffer.alloc(length)).digest("hex");
    zeroChecksums.set(length, sum);
  }
  return sum;
}

/** Raised when a request carries an epoch below the highest this replica has seen: its engine is stale. */
export class FencedError extends ConflictError {
  constructor(
    readonly epoch: number,
    /** The highest epoch the replica has admitted. */
    readonly highest: number,
  ) {
    super("replica.fenced", `epoch ${epoch} is not this replica's epoch ${highest}: the engine is fenced`);
  }
}

export interface CreateReplicaOptions {
  /** The volume this replica belongs to. */
  volumeId: string;
  /** Volume size in bytes. */
  size: number;
  /** Block size in bytes. @default 4096 */
  blockSize?: number;
}

/**
 * One copy of a volume on one node's storage pool: a sparse data file per layer, an allocation map per
 * layer, an activity log, and the highest epoch seen. See docs/decisions/0001-replica-layout.md.
 */
export class Replica implements BlockDevice {
  private closed = false;

  private constructor(
    readonly dir: string,
    private manifest: ReplicaManifest,
    private readonly dataFd: number,
    private readonly allocation: BitmapFile,
    private readonly activity: ActivityLog,
    private highestEpoch: number,
  ) {}

  static async create(dir: string, options: CreateReplicaOptions): Promise<Replica> {
    const paths = replicaPaths(dir);
    const manifest: ReplicaManifest = {
      format: 1,
      volumeId: options.volumeId,
      size: options.size,
      blockSize: options.blockSize ?? 4096,
      layers: ["000000"],
      createdAt: new Date().toISOString(),
    };
    await mkdir(paths.layerDir("000000"), { recursive: true, mode: 0o700 });
    const fd = await openFile(paths.layerData("000000"), "wx");
    await closeFile(fd);
    await truncate(paths.layerData("000000"), options.size);
    await writeFile(paths.epoch, "0\n", { mode: 0o600 });
    await writeManifest(dir, manifest);
    return Replica.open(dir);
  }

  static async open(dir: string): Promise<Replica> {
    const paths = replicaPaths(dir);
    const manifest = ReplicaManifest.parse(JSON.parse(await readFile(paths.manifest, "utf8")));
    const top = manifest.layers.at(-1) as string;
    const epoch = Number.parseInt(await readFile(paths.epoch, "utf8"), 10);
    const dataFd = await openFile(paths.layerData(top), "r+");
    const allocation = await BitmapFile.open(paths.layerMap(top), Math.ceil(manifest.size / CLUSTER_SIZE));
    const activity = await ActivityLog.open(paths.activityLog, manifest.size, REGION_SIZE);
    // After a crash the allocation map may miss clusters written since the last flush; every such write
    // lies in a logged region, so count those regions as allocated.
    for (const region of activity.regions()) {
      const first = (region * REGION_SIZE) / CLUSTER_SIZE;
      for (let c = first; c < first + REGION_SIZE / CLUSTER_SIZE; c++) allocation.set(c);
    }
    return new Replica(dir, manifest, dataFd, allocation, activity, Number.isFinite(epoch) ? epoch : 0);
  }

  /** Removes a replica and all its data. */
  static async destroy(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  get size(): number {
    return this.manifest.size;
  }

  get blockSize(): number {
    return this.manifest.blockSize;
  }

  get volumeId(): string {
    return this.manifest.volumeId;
  }

  /** The highest epoch this replica has accepted. */
  get epoch(): number {
    return this.highestEpoch;
  }

  /** Regions the activity log holds: where replicas may differ after an engine crash. */
  activeRegions(): number[] {
    return this.activity.regions();
  }

  /**
   * Admits an engine with `epoch`: refuses one below the highest seen (it is stale), and records a higher
   * one durably before answering, so a restart cannot forget it.
   */
  async admit(epoch: number): Promise<void> {
    if (epoch < this.highestEpoch) throw new FencedError(epoch, this.highestEpoch);
    if (epoch === this.highestEpoch) return;
    const path = replicaPaths(this.dir).epoch;
    await writeFile(`${path}.tmp`, `${epoch}\n`, { mode: 0o600 });
    const fd = await openFile(`${path}.tmp`, "r");
    await syncAll(fd);
    await closeFile(fd);
    await rename(`${path}.tmp`, path);
    this.highestEpoch = epoch;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const out = Buffer.allocUnsafe(length);
    if (!inlineIo.tryRead(this.dataFd, out, offset)) await readAt(this.dataFd, out, offset);
    return out;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.check(offset, data.length);
    const logged = this.activity.activate(offset, data.length);
    if (logged) await logged;
    this.markAllocated(offset, data.length);
    if (!inlineIo.tryWrite(this.dataFd, data, offset)) await writeAt(this.dataFd, data, offset);
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    const afterFlush = this.activity.beginFlush();
    await this.activity.persist();
    await syncData(this.dataFd);
    await this.allocation.persist(true);
    await afterFlush();
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    if (length === 0) return;
    const logged = this.activity.activate(offset, length);
    if (logged) await logged;
    if (length < PUNCH_THRESHOLD) {
      await writeAt(this.dataFd, ZEROS.subarray(0, length), offset);
      return;
    }
    // Whole clusters are punched out and leave the allocation map; the partial ones at the edges get zeros.
    const start = Math.ceil(offset / CLUSTER_SIZE) * CLUSTER_SIZE;
    const end = Math.floor((offset + length) / CLUSTER_SIZE) * CLUSTER_SIZE;
    if (start > offset) await writeAt(this.dataFd, ZEROS.subarray(0, start - offset), offset);
    if (offset + length > end) await writeAt(this.dataFd, ZEROS.subarray(0, offset + length - end), end);
    await this.punchHole(start, end - start);
    for (let c = start / CLUSTER_SIZE; c < end / CLUSTER_SIZE; c++) this.allocation.clear(c);
  }

  /** Grows the replica to `size` bytes (never shrinks). */
  async grow(size: number): Promise<void> {
    if (size < this.manifest.size) {
      throw new ConflictError(
        "volume.shrink",
        `cannot shrink from ${this.manifest.size} to ${size} bytes`,
        "size",
      );
    }
    if (size === this.manifest.size) return;
    const paths = replicaPaths(this.dir);
    await truncate(paths.layerData(this.manifest.layers.at(-1) as string), size);
    this.allocation.grow(Math.ceil(size / CLUSTER_SIZE));
    this.activity.grow(size);
    this.manifest = { ...this.manifest, size };
    await writeManifest(this.dir, this.manifest);
  }

  /**
   * SHA-256 of one region's bytes (the last region may be short). A region with no allocated cluster hashes as
   * zeros without being read, so comparing two sparse replicas costs what they hold, not what they could hold.
   */
  async regionChecksum(region: number): Promise<string> {
    const offset = region * REGION_SIZE;
    const length = Math.min(REGION_SIZE, this.manifest.size - offset);
    this.check(offset, length);
    const first = offset / CLUSTER_SIZE;
    let allocated = false;
    for (let c = first; c < first + Math.ceil(length / CLUSTER_SIZE) && !allocated; c++)
      allocated = this.allocation.test(c);
    if (!allocated) return zeroChecksum(length);
    const data = Buffer.allocUnsafe(length);
    await readAt(this.dataFd, data, offset);
    return createHash("sha256").update(data).digest("hex");
  }

  /** Whether `dir` holds a replica (its manifest), without reading it. */
  static async exists(dir: string): Promise<boolean> {
    return stat(replicaPaths(dir).manifest).then(
      () => true,
      () => false,
    );
  }

  /** Bytes a replica's files take on disk, read from the files without opening the replica. */
  static async bytesOnDisk(dir: string): Promise<number> {
    const manifest = ReplicaManifest.parse(JSON.parse(await readFile(replicaPaths(dir).manifest, "utf8")));
    return filesOnDisk(dir, manifest);
  }

  /** Bytes this replica takes on disk (data, maps and log), and bytes of the volume allocated. */
  async usage(): Promise<{ onDisk: number; allocated: number }> {
    let clusters = 0;
    for (const _ of this.allocation.setBits()) clusters++;
    return {
      onDisk: await filesOnDisk(this.dir, this.manifest),
      allocated: Math.min(clusters * CLUSTER_SIZE, this.manifest.size),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.activity.close();
    await this.allocation.persist(true);
    await this.allocation.close();
    await syncData(this.dataFd);
    await closeFile(this.dataFd);
  }

  private markAllocated(offset: number, length: number): void {
    const last = Math.floor((offset + length - 1) / CLUSTER_SIZE);
    for (let c = Math.floor(offset / CLUSTER_SIZE); c <= last; c++) this.allocation.set(c);
  }

  private async punchHole(offset: number, length: number): Promise<void> {
    if (length <= 0) return;
    const path = replicaPaths(this.dir).layerData(this.manifest.layers.at(-1) as string);
    try {
      await run("fallocate", [
        "--punch-hole",
        "--keep-size",
        "-o",
        String(offset),
        "-l",
        String(length),
        path,
      ]);
    } catch {
      // A file system without hole punching still gets the zeros the caller asked for.
      for (let at = offset; at < offset + length; at += ZEROS.length) {
        await writeAt(this.dataFd, ZEROS.subarray(0, Math.min(ZEROS.length, offset + length - at)), at);
      }
    }
  }

  private check(offset: number, length: number): void {
    if (this.closed)
      throw new OperationError("replica.closed", `replica ${this.manifest.volumeId} is closed`);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`invalid range ${offset}+${length}`);
    }
    if (offset + length > this.manifest.size) {
      throw new RangeError(
        `range ${offset}+${length} is past the end of the volume (${this.manifest.size} bytes)`,
      );
    }
  }
}

/** Sums the space every file of a replica takes: each layer's data and map, the log, the manifest, the epoch. */
async function filesOnDisk(dir: string, manifest: ReplicaManifest): Promise<number> {
  const paths = replicaPaths(dir);
  const files = [
    ...manifest.layers.flatMap((layer) => [paths.layerData(layer), paths.layerMap(layer)]),
    paths.activityLog,
    paths.manifest,
    paths.epoch,
  ];
  const sizes = await Promise.all(
    files.map((f) =>
      stat(f).then(
        (s) => s.blocks * 512,
        () => 0,
      ),
    ),
  );
  return sizes.reduce((a, b) => a + b, 0);
}

async function writeManifest(dir: string, manifest: ReplicaManifest): Promise<void> {
  const path = replicaPaths(dir).manifest;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  const fd = await openFile(`${path}.tmp`, "r");
  await syncAll(fd);
  await closeFile(fd);
  await rename(`${path}.tmp`, path);
}
