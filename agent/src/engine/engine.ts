import { OperationError } from "../errors.js";
import { FencedError } from "../replica/index.js";
import type { BlockDevice } from "./block-device.js";

/** A copy of the volume the engine writes to: the local replica, or (later) a remote one over the wire. */
export interface ReplicaTarget extends BlockDevice {
  /** Admits an engine holding `epoch`; rejects one below the highest epoch the replica has seen. */
  admit(epoch: number): Promise<void>;
  /** Grows the copy to `size` bytes. */
  grow(size: number): Promise<void>;
}

export interface EngineOptions {
  /** The volume's id, for errors and logs. */
  volumeId: string;
  /** The attachment's epoch, from the metadata store: strictly higher than any earlier attachment's. */
  epoch: number;
  /** The in-sync replicas; the first is read from (the local one, when there is one). */
  replicas: ReplicaTarget[];
  /**
   * Takes failed replicas out of the in-sync set (in the metadata store). A write that a replica missed is
   * acknowledged only after this resolves; if it rejects, the write fails instead.
   * @default - none: any replica failure fails the request
   */
  onReplicaFailed?: (failed: ReplicaTarget[], cause: unknown) => Promise<void>;
}

/**
 * The per-volume I/O engine on the attached node: serves the volume as one BlockDevice, sends every write to
 * every in-sync replica and acknowledges it when all have, and makes FLUSH durable on all of them.
 */
export class Engine implements BlockDevice {
  private stopped = false;

  private readonly replicas: ReplicaTarget[];
  private readonly dropping = new Map<ReplicaTarget, Promise<void>>();

  private constructor(private readonly options: EngineOptions) {
    this.replicas = [...options.replicas];
  }

  /** The replicas this engine still writes to. */
  get inSync(): readonly ReplicaTarget[] {
    return this.replicas;
  }

  /** Admits the engine's epoch on every replica before any I/O, so a stale engine is fenced from the start. */
  static async start(options: EngineOptions): Promise<Engine> {
    if (options.replicas.length === 0) {
      throw new OperationError("engine.no_replicas", `volume ${options.volumeId} has no in-sync replica`);
    }
    await Promise.all(options.replicas.map((r) => r.admit(options.epoch)));
    return new Engine(options);
  }

  get size(): number {
    return this.primary.size;
  }

  get blockSize(): number {
    return this.primary.blockSize;
  }

  get epoch(): number {
    return this.options.epoch;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.assertRunning();
    return this.primary.read(offset, length);
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.fanOut((r) => r.write(offset, data));
  }

  flush(): Promise<void> {
    return this.fanOut((r) => r.flush());
  }

  trim(offset: number, length: number): Promise<void> {
    return this.fanOut((r) => r.trim(offset, length));
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.fanOut((r) => r.writeZeroes(offset, length));
  }

  /** Grows every replica; the volume is only bigger once all of them are. */
  grow(size: number): Promise<void> {
    return this.fanOut((r) => r.grow(size));
  }

  /** Flushes and stops serving; later requests fail. The replicas stay open: their owner closes them. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.flush();
    this.stopped = true;
  }

  private get primary(): ReplicaTarget {
    return this.replicas[0] as ReplicaTarget;
  }

  /**
   * Runs `op` on every in-sync replica. A replica that fails is dropped through `onReplicaFailed` before the
   * request is acknowledged; the volume stays writable while one replica remains. Fencing and bad ranges are
   * the request's fault, not a replica's, and fail the request as they are.
   */
  private async fanOut(op: (replica: ReplicaTarget) => Promise<void>): Promise<void> {
    this.assertRunning();
    const replicas = [...this.replicas];
    if (replicas.length === 1) return op(replicas[0] as ReplicaTarget);
    const results = await Promise.allSettled(replicas.map(op));
    const failed: ReplicaTarget[] = [];
    let cause: unknown;
    for (const [i, result] of results.entries()) {
      if (result.status === "fulfilled") continue;
      if (result.reason instanceof FencedError) {
        this.stopped = true;
        throw result.reason;
      }
      if (result.reason instanceof RangeError) throw result.reason;
      failed.push(replicas[i] as ReplicaTarget);
      cause ??= result.reason;
    }
    if (failed.length === 0) return;
    if (failed.length === replicas.length || !this.options.onReplicaFailed) throw cause;
    await this.drop(failed, cause);
  }

  /** Drops replicas once, however many concurrent requests saw them fail; each request waits for the drop. */
  private drop(failed: ReplicaTarget[], cause: unknown): Promise<void> {
    const fresh = failed.filter((r) => !this.dropping.has(r));
    if (fresh.length > 0) {
      const dropped = (this.options.onReplicaFailed as NonNullable<EngineOptions["onReplicaFailed"]>)(
        fresh,
        cause,
      ).then(() => {
        for (const replica of fresh) {
          const at = this.replicas.indexOf(replica);
          if (at >= 0) this.replicas.splice(at, 1);
        }
      });
      // A failed drop leaves the replica in the set: the next request that misses it tries again.
      for (const replica of fresh)
        this.dropping.set(
          replica,
          dropped.finally(() => this.dropping.delete(replica)),
        );
    }
    return Promise.all(failed.map((r) => this.dropping.get(r))).then(() => undefined);
  }

  private assertRunning(): void {
    if (this.stopped)
      throw new OperationError("engine.stopped", `volume ${this.options.volumeId} is detached`);
  }
}
