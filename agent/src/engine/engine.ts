import { OperationError } from "../errors.js";
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
}

/**
 * The per-volume I/O engine on the attached node: serves the volume as one BlockDevice, sends every write to
 * every in-sync replica and acknowledges it when all have, and makes FLUSH durable on all of them.
 */
export class Engine implements BlockDevice {
  private stopped = false;

  private constructor(private readonly options: EngineOptions) {}

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
    return this.options.replicas[0] as ReplicaTarget;
  }

  private async fanOut(op: (replica: ReplicaTarget) => Promise<void>): Promise<void> {
    this.assertRunning();
    const { replicas } = this.options;
    if (replicas.length === 1) return op(replicas[0] as ReplicaTarget);
    await Promise.all(replicas.map(op));
  }

  private assertRunning(): void {
    if (this.stopped)
      throw new OperationError("engine.stopped", `volume ${this.options.volumeId} is detached`);
  }
}
