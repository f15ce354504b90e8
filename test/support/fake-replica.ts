import { createHash } from "node:crypto";
import { FencedError, REGION_SIZE, type ReplicaTarget } from "../../agent/src/contracts/index.js";
import { OperationError } from "../../agent/src/errors.js";

const PAGE = 4096;

/** What a fault hook sees: the operation about to apply to a FakeReplica. */
export interface FakeOp {
  kind: "admit" | "read" | "write" | "flush" | "zero" | "grow" | "regions" | "checksum";
  offset: number;
  length: number;
}

/**
 * A replica in memory for deterministic engine tests, with a fault hook run before each operation applies: the
 * hook may hold the operation (return a promise the test settles later: delays, reordering, hangs) or fail it
 * (throw: EIO, a dead connection). Fencing behaves as a real replica's: requests carry the admitted epoch.
 *
 * `data` is what reads see (the page cache); `disk` is what a flush made durable. A flush failing with EIO does
 * as Linux does after a writeback error: the dirty pages are marked clean without reaching the disk, so reads go on
 * returning them until `dropCache`, and the next flush succeeds without writing them.
 */
export class FakeReplica implements ReplicaTarget {
  data: Buffer;
  disk: Buffer;
  private readonly dirty = new Set<number>();
  /** The highest epoch admitted. */
  highest = 0;
  private epoch = 0;
  /** Regions this replica's activity log names (set by a test to stage a crash). */
  logged: number[] = [];
  /** Writes in the order they applied, for ordering assertions. */
  readonly applied: Array<{ offset: number; length: number; first: number }> = [];
  hook?: (op: FakeOp) => Promise<void> | void;
  /** Run once a write or zeroing has applied: throwing fails an operation that took effect (ENOSPC midway). */
  afterHook?: (op: FakeOp) => void;
  private readonly connection = deferred<unknown>();
  /** Settles when the test cuts the replica's connection (loseConnection), as a RemoteReplica's does. */
  readonly lost: Promise<unknown> = this.connection.promise;

  constructor(
    readonly name: string,
    size: number,
    readonly blockSize = 4096,
  ) {
    this.data = Buffer.alloc(size);
    this.disk = Buffer.alloc(size);
  }

  get size(): number {
    return this.data.length;
  }

  async admit(epoch: number): Promise<void> {
    await this.hook?.({ kind: "admit", offset: 0, length: 0 });
    if (epoch < this.highest) throw new FencedError(epoch, this.highest);
    this.highest = epoch;
    this.epoch = epoch;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.enter({ kind: "read", offset, length });
    return Buffer.from(this.data.subarray(offset, offset + length));
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.enter({ kind: "write", offset, length: data.length });
    data.copy(this.data, offset);
    this.touch(offset, data.length);
    this.applied.push({ offset, length: data.length, first: data[0] ?? 0 });
    this.afterHook?.({ kind: "write", offset, length: data.length });
  }

  async flush(): Promise<void> {
    try {
      await this.enter({ kind: "flush", offset: 0, length: 0 });
    } catch (err) {
      if ((err as { code?: string }).code === "EIO") this.dirty.clear();
      throw err;
    }
    for (const page of this.dirty) this.data.copy(this.disk, page * PAGE, page * PAGE, (page + 1) * PAGE);
    this.dirty.clear();
  }

  /** Its connection breaks: `lost` settles, and every later request fails as a dead connection's would. */
  loseConnection(): void {
    this.hook = () => {
      throw connectionLost();
    };
    this.connection.resolve(connectionLost());
  }

  /** What reads return once the kernel dropped its clean pages (or the node restarted): the disk's bytes. */
  dropCache(): void {
    const cached = Buffer.from(this.disk);
    for (const page of this.dirty) this.data.copy(cached, page * PAGE, page * PAGE, (page + 1) * PAGE);
    this.data = cached;
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.enter({ kind: "zero", offset, length });
    this.data.fill(0, offset, offset + length);
    this.touch(offset, length);
    this.applied.push({ offset, length, first: 0 });
    this.afterHook?.({ kind: "zero", offset, length });
  }

  async grow(size: number): Promise<void> {
    await this.enter({ kind: "grow", offset: size, length: 0 });
    if (size > this.data.length) {
      this.data = Buffer.concat([this.data, Buffer.alloc(size - this.data.length)]);
      this.disk = Buffer.concat([this.disk, Buffer.alloc(size - this.disk.length)]);
    }
  }

  async activeRegions(): Promise<number[]> {
    await this.hook?.({ kind: "regions", offset: 0, length: 0 });
    return [...this.logged];
  }

  async regionChecksum(region: number): Promise<string> {
    await this.hook?.({ kind: "checksum", offset: region, length: 0 });
    const offset = region * REGION_SIZE;
    return createHash("sha256")
      .update(this.data.subarray(offset, Math.min(offset + REGION_SIZE, this.data.length)))
      .digest("hex");
  }

  private touch(offset: number, length: number): void {
    for (let page = Math.floor(offset / PAGE); page * PAGE < offset + length; page++) this.dirty.add(page);
  }

  private async enter(op: FakeOp): Promise<void> {
    const epoch = this.epoch;
    await this.hook?.(op);
    // Checked after the hook, as a real replica checks when the request arrives, not when it was sent.
    if (epoch !== this.highest) throw new FencedError(epoch, this.highest);
  }
}

/** An I/O error as the file system raises it (EIO, ENOSPC): the replica's own failure, not the connection's. */
export function ioError(code: "EIO" | "ENOSPC"): Error {
  return Object.assign(new Error(`${code}: i/o error`), { code });
}

/** A dead connection to a remote replica, as RemoteReplica reports it. */
export function connectionLost(): OperationError {
  return new OperationError("replica.unreachable", "replica on n2 (127.0.0.1:1) failed: connection closed");
}

/** A promise and the functions that settle it: lets a test hold an operation open at a chosen point. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued callback run: the engine's fan-out is promise chains, so a few turns reach a fixed point. */
export async function drain(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}
