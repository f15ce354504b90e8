import { createHash } from "node:crypto";
import type { ReplicaTarget } from "../../agent/src/engine/index.js";
import { FencedError, REGION_SIZE } from "../../agent/src/replica/index.js";

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
 */
export class FakeReplica implements ReplicaTarget {
  data: Buffer;
  /** The highest epoch admitted. */
  highest = 0;
  private epoch = 0;
  /** Regions this replica's activity log names (set by a test to stage a crash). */
  logged: number[] = [];
  /** Writes in the order they applied, for ordering assertions. */
  readonly applied: Array<{ offset: number; length: number; first: number }> = [];
  hook?: (op: FakeOp) => Promise<void> | void;

  constructor(
    readonly name: string,
    size: number,
    readonly blockSize = 4096,
  ) {
    this.data = Buffer.alloc(size);
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
    this.applied.push({ offset, length: data.length, first: data[0] ?? 0 });
  }

  async flush(): Promise<void> {
    await this.enter({ kind: "flush", offset: 0, length: 0 });
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.enter({ kind: "zero", offset, length });
    this.data.fill(0, offset, offset + length);
    this.applied.push({ offset, length, first: 0 });
  }

  async grow(size: number): Promise<void> {
    await this.enter({ kind: "grow", offset: size, length: 0 });
    if (size > this.data.length)
      this.data = Buffer.concat([this.data, Buffer.alloc(size - this.data.length)]);
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

  private async enter(op: FakeOp): Promise<void> {
    const epoch = this.epoch;
    await this.hook?.(op);
    // Checked after the hook, as a real replica checks when the request arrives, not when it was sent.
    if (epoch !== this.highest) throw new FencedError(epoch, this.highest);
  }
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
