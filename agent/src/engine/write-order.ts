/** A write (or zeroing, or trim) on its way to the replicas: the bytes it covers, and who waits for it. */
interface InFlight {
  start: number;
  end: number;
  waiters?: Array<() => void>;
}

/**
 * Orders overlapping writes. A write that overlaps one still in flight goes to the replicas only after that one has
 * been answered by all of them, so every replica applies overlapping writes in one order and none can end up with
 * the other's bytes (each replica splits large writes into pieces the kernel applies in parallel, and two engines'
 * requests to two replicas race independently). This is DRBD's conflict detection, kept on the one node that sends.
 *
 * Writes that overlap nothing in flight, the common case, go out at once without a turn of the event loop.
 */
export class WriteOrder {
  private readonly inFlight = new Set<InFlight>();

  /**
   * Records a write of `[offset, offset+length)`. Returns its handle once every earlier overlapping write has been
   * answered: at once (not a promise) when none is in flight. Each handle must be given back to `leave`.
   */
  enter(offset: number, length: number): InFlight | Promise<InFlight> {
    const write: InFlight = { start: offset, end: offset + length };
    const earlier: InFlight[] = [];
    for (const other of this.inFlight)
      if (other.start < write.end && write.start < other.end) earlier.push(other);
    // Entered before waiting: a later write overlapping this one queues behind it, in arrival order.
    this.inFlight.add(write);
    if (earlier.length === 0) return write;
    const answered = earlier.map(
      (other) =>
        new Promise<void>((resolve) => {
          other.waiters ??= [];
          other.waiters.push(resolve);
        }),
    );
    return Promise.all(answered).then(() => write);
  }

  /** The write has been answered by every replica (or failed): later overlapping writes may go. */
  leave(write: InFlight): void {
    this.inFlight.delete(write);
    if (write.waiters) for (const wake of write.waiters) wake();
  }
}
