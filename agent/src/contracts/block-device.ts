/**
 * What every frontend (NBD, the FUSE-backed file) serves: a fixed-size array of bytes. The engine implements it
 * over the volume's replicas; tests may implement it over memory.
 *
 * Offsets and lengths are in bytes. Callers keep requests inside `[0, size)`; implementations still check and
 * throw a RangeError rather than touch data outside the volume.
 */
export interface BlockDevice {
  /** Size of the device in bytes (a multiple of `blockSize`). */
  readonly size: number;
  /** The smallest unit of allocation, in bytes (4096). */
  readonly blockSize: number;
  /** Reads `length` bytes at `offset`; unwritten ranges read as zeros. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Writes `data` at `offset`. Durable only after the next `flush()` resolves. */
  write(offset: number, data: Buffer): Promise<void>;
  /** Makes every write acknowledged before this call durable (data and metadata). */
  flush(): Promise<void>;
  /** Releases the range: it reads as zeros afterwards and need not take space. */
  trim(offset: number, length: number): Promise<void>;
  /** Writes zeros over the range (may release space, as `trim` does). */
  writeZeroes(offset: number, length: number): Promise<void>;
}
