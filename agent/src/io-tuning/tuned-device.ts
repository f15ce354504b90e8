import type { BlockDevice } from "../contracts/index.js";
import type { IoPriority, IoProfile } from "../volume-spec/index.js";
import { FlushGroup } from "./flush-group.js";
import type { IoLane, IoShares } from "./io-shares.js";
import { ReadAhead, type ReadAheadMode } from "./read-ahead.js";

/** What a profile turns on. See docs/decisions/0011-io-tuning.md for why each profile gets what it gets. */
export interface ProfileBehaviour {
  readAhead: ReadAheadMode;
  coalesceFlushes: boolean;
}

export const PROFILES: Readonly<Record<IoProfile, ProfileBehaviour>> = {
  sequential: { readAhead: "on", coalesceFlushes: false },
  random: { readAhead: "off", coalesceFlushes: false },
  db: { readAhead: "off", coalesceFlushes: true },
  db_remote: { readAhead: "off", coalesceFlushes: true },
  cms: { readAhead: "off", coalesceFlushes: true },
  auto: { readAhead: "off", coalesceFlushes: true },
  none: { readAhead: "off", coalesceFlushes: false },
};

/** A volume's tuning: its spec's `io_profile` and `io_priority`. */
export interface IoTuning {
  ioProfile: IoProfile;
  ioPriority: IoPriority;
}

export interface TunedDeviceOptions extends IoTuning {
  /** The volume's engine (or any device) that every request ends at. */
  device: BlockDevice;
  /** The node's shares, which every volume attached here draws its slots from. */
  shares: IoShares;
  /**
   * How far ahead of a sequential reader bytes are kept in flight or held.
   * @default 1 MiB
   */
  readAheadBytes?: number;
  /**
   * Bytes one prefetch reads; several run side by side.
   * @default 256 KiB
   */
  readAheadWindowBytes?: number;
}

/**
 * A volume as its frontends see it: its engine behind the volume's I/O profile (read-ahead, flush group commit) and
 * its share of the node's I/O slots. The engine underneath is untouched; everything here only decides when a
 * request reaches it, and serves reads from bytes it returned, never newer than the last acknowledged write.
 */
export class TunedDevice implements BlockDevice {
  private readonly device: BlockDevice;
  private readonly lane: IoLane;
  private readonly shares: IoShares;
  private readonly readAhead: ReadAhead;
  private readonly flushes: FlushGroup;
  private tuning: IoTuning;

  constructor(options: TunedDeviceOptions) {
    const { device, shares } = options;
    this.device = device;
    this.shares = shares;
    this.lane = shares.join(options.ioPriority);
    this.readAhead = new ReadAhead({
      read: (offset, length) => this.lane.run(() => device.read(offset, length)),
      size: () => device.size,
      aheadBytes: options.readAheadBytes,
      windowBytes: options.readAheadWindowBytes,
    });
    this.flushes = new FlushGroup(() => this.lane.run(() => device.flush()));
    this.tuning = { ioProfile: options.ioProfile, ioPriority: options.ioPriority };
    this.readAhead.mode = PROFILES[options.ioProfile].readAhead;
  }

  get size(): number {
    return this.device.size;
  }

  get blockSize(): number {
    return this.device.blockSize;
  }

  /** The profile and priority in force now. */
  get current(): IoTuning {
    return { ...this.tuning };
  }

  /** What the tuning has done so far, for metrics and tests. */
  get stats(): { admitted: number; readAheadHits: number; prefetches: number; readAheadBytes: number } {
    const { hits, prefetches, bytes } = this.readAhead;
    return { admitted: this.lane.admitted, readAheadHits: hits, prefetches, readAheadBytes: bytes };
  }

  /**
   * Changes profile and priority together, while I/O runs. Requests already accepted keep going as they were, so
   * none is lost or reordered; the read-ahead cache is dropped on a profile change (readers waiting on a prefetch
   * go to the device), and the new priority counts from the volume's next queued request.
   */
  retune(tuning: IoTuning): void {
    if (tuning.ioProfile !== this.tuning.ioProfile) {
      this.readAhead.clear();
      this.readAhead.mode = PROFILES[tuning.ioProfile].readAhead;
    }
    this.lane.priority = tuning.ioPriority;
    this.tuning = { ...tuning };
  }

  /** Gives the volume's place in the node's shares back (the volume is detached); requests still queued go on. */
  close(): void {
    this.shares.leave(this.lane);
  }

  read(offset: number, length: number): Promise<Buffer> {
    if (this.readAhead.mode === "off") return this.lane.run(() => this.device.read(offset, length));
    return this.readAhead.read(offset, length);
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.mutate(offset, data.length, () => this.device.write(offset, data));
  }

  flush(): Promise<void> {
    if (PROFILES[this.tuning.ioProfile].coalesceFlushes) return this.flushes.flush();
    return this.lane.run(() => this.device.flush());
  }

  trim(offset: number, length: number): Promise<void> {
    return this.mutate(offset, length, () => this.device.trim(offset, length));
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.mutate(offset, length, () => this.device.writeZeroes(offset, length));
  }

  /** Every mutation is announced to the read-ahead, whatever the profile: a retune may turn it on mid-flight. */
  private async mutate(offset: number, length: number, op: () => Promise<void>): Promise<void> {
    const mutation = this.readAhead.mutating(offset, length);
    try {
      await this.lane.run(op);
    } finally {
      this.readAhead.mutated(mutation);
    }
  }
}
