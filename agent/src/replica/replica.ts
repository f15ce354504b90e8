import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, stat, truncate } from "node:fs/promises";
import { promisify } from "node:util";
import { REGION_SIZE } from "../contracts/index.js";
import { ConflictError, OperationError } from "../errors.js";
import { ActivityLog } from "./activity-log.js";
import { BitmapFile } from "./bitmap-file.js";
import { EpochGate } from "./epoch-gate.js";
import { closeFile, openFile, readAt, replaceFile, syncData, writeAt } from "./file-io.js";
import { inlineIo } from "./inline-io.js";
import { CLUSTER_SIZE, ReplicaManifest, replicaPaths } from "./layout.js";

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
 *
 * Every request that touches the data carries the epoch of the engine that sends it, whichever path it comes by
 * (the engine on this node, or the replication port), and the replica's EpochGate decides it: an engine that a
 * newer one has fenced cannot read or write here. Engines use it through a {@link ReplicaSession}.
 */
export class Replica {
  private closed = false;
  private readonly gate: EpochGate;

  private constructor(
    readonly dir: string,
    private manifest: ReplicaManifest,
    private readonly dataFd: number,
    private readonly allocation: BitmapFile,
    private readonly activity: ActivityLog,
    epoch: number,
  ) {
    this.gate = new EpochGate(epoch, (e) => replaceFile(replicaPaths(dir).epoch, `${e}\n`));
  }

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
    // Durable before the manifest that makes the replica exist: a replica with a manifest always has an epoch.
    await replaceFile(paths.epoch, "0\n");
    await writeManifest(dir, manifest);
    return Replica.open(dir);
  }

  static async open(dir: string): Promise<Replica> {
    const paths = replicaPaths(dir);
    const manifest = ReplicaManifest.parse(JSON.parse(await readFile(paths.manifest, "utf8")));
    const top = manifest.layers.at(-1) as string;
    const epoch = parseEpoch(await readFile(paths.epoch, "utf8"), paths.epoch);
    const dataFd = await openFile(paths.layerData(top), "r+");
    const allocation = await BitmapFile.open(paths.layerMap(top), Math.ceil(manifest.size / CLUSTER_SIZE));
    const activity = await ActivityLog.open(paths.activityLog, manifest.size, REGION_SIZE);
    // After a crash the allocation map may miss clusters written since the last flush; every such write
    // lies in a logged region, so count those regions as allocated.
    for (const region of activity.regions()) {
      const first = (region * REGION_SIZE) / CLUSTER_SIZE;
      for (let c = first; c < first + REGION_SIZE / CLUSTER_SIZE; c++) allocation.set(c);
    }
    return new Replica(dir, manifest, dataFd, allocation, activity, epoch);
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

  /** The highest epoch this replica has been asked to admit. */
  get epoch(): number {
    return this.gate.epoch;
  }

  /** A view of this replica for one engine: every request it makes carries the epoch it admitted. */
  session(): ReplicaSession {
    return new ReplicaSession(this);
  }

  /** Regions the activity log holds: where replicas may differ after an engine crash. */
  activeRegions(): number[] {
    return this.activity.regions();
  }

  /**
   * Admits an engine with `epoch`: refuses one below the highest seen (it is stale), refuses every older
   * engine's request from now on, waits for those already running, and records the epoch durably before answering,
   * so a restart cannot forget it.
   */
  admit(epoch: number): Promise<void> {
    return this.gate.admit(epoch);
  }

  read(epoch: number, offset: number, length: number): Promise<Buffer> {
    return this.gate.run(epoch, async () => {
      this.check(offset, length);
      const out = Buffer.allocUnsafe(length);
      if (!inlineIo.tryRead(this.dataFd, out, offset)) await readAt(this.dataFd, out, offset);
      return out;
    });
  }

  write(epoch: number, offset: number, data: Buffer): Promise<void> {
    return this.gate.run(epoch, async () => {
      this.check(offset, data.length);
      await this.logged(offset, data.length, async () => {
        this.markAllocated(offset, data.length);
        if (!inlineIo.tryWrite(this.dataFd, data, offset)) await writeAt(this.dataFd, data, offset);
      });
    });
  }

  flush(epoch: number): Promise<void> {
    return this.gate.run(epoch, async () => {
      this.check(0, 0);
      const afterFlush = this.activity.beginFlush();
      await this.activity.persist();
      await syncData(this.dataFd);
      await this.allocation.persist(true);
      await afterFlush();
    });
  }

  writeZeroes(epoch: number, offset: number, length: number): Promise<void> {
    return this.gate.run(epoch, async () => {
      this.check(offset, length);
      if (length === 0) return;
      await this.logged(offset, length, () => this.zero(offset, length));
    });
  }

  /** Grows the replica to `size` bytes (never shrinks). */
  grow(epoch: number, size: number): Promise<void> {
    return this.gate.run(epoch, async () => {
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
    });
  }

  /** Applies a write inside the activity log: its regions are logged durably first and stay logged until it is done. */
  private async logged(offset: number, length: number, apply: () => Promise<void>): Promise<void> {
    try {
      const durable = this.activity.activate(offset, length);
      if (durable) await durable;
      await apply();
    } finally {
      this.activity.settle(offset, length);
    }
  }

  private async zero(offset: number, length: number): Promise<void> {
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
  await replaceFile(replicaPaths(dir).manifest, `${JSON.stringify(manifest, null, 2)}\n`);
}

/**
 * The epoch file holds one decimal number. Anything else is refused loudly: reading a damaged file as epoch 0 would
 * let every fenced engine back in.
 */
function parseEpoch(text: string, path: string): number {
  const match = /^(\d{1,15})\n?$/.exec(text);
  if (!match) {
    throw new OperationError(
      "replica.epoch_corrupt",
      `${path} does not hold an epoch (${JSON.stringify(text.slice(0, 40))}): refusing to open the replica, since it could no longer fence stale engines; restore the file or rebuild this replica`,
    );
  }
  return Number(match[1]);
}

/**
 * One engine's view of a replica on its own node: it admits its epoch once, and every request then carries that
 * epoch into the replica's gate, exactly as requests from the replication port do.
 */
export class ReplicaSession {
  private epoch = 0;

  constructor(private readonly replica: Replica) {}

  get size(): number {
    return this.replica.size;
  }

  get blockSize(): number {
    return this.replica.blockSize;
  }

  async admit(epoch: number): Promise<void> {
    await this.replica.admit(epoch);
    this.epoch = epoch;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.replica.read(this.epoch, offset, length);
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.replica.write(this.epoch, offset, data);
  }

  flush(): Promise<void> {
    return this.replica.flush(this.epoch);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.replica.writeZeroes(this.epoch, offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.replica.writeZeroes(this.epoch, offset, length);
  }

  grow(size: number): Promise<void> {
    return this.replica.grow(this.epoch, size);
  }

  activeRegions(): number[] {
    return this.replica.activeRegions();
  }

  regionChecksum(region: number): Promise<string> {
    return this.replica.regionChecksum(region);
  }
}
