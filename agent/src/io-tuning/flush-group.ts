/**
 * Group commit for FLUSH. A flush issued while none is in flight goes to the device at once. One issued while a
 * flush is in flight waits for it, then shares ONE following flush with every other that queued meanwhile: N
 * flushes queued behind a slow one cost the device one more flush, not N.
 *
 * A queued flush is never answered by the flush that was already in flight when it was issued: that one may have
 * started before writes the caller saw acknowledged, and so may not cover them. The shared flush starts after every
 * flush it answers was issued, so it covers every write acknowledged before any of them.
 */
export class FlushGroup {
  private inFlight?: Promise<void>;
  private next?: Promise<void>;

  constructor(private readonly flushDevice: () => Promise<void>) {}

  flush(): Promise<void> {
    if (!this.inFlight) return this.start();
    // The in-flight flush's outcome is its own callers'; the next one is issued whatever it was.
    this.next ??= this.inFlight.then(
      () => this.start(),
      () => this.start(),
    );
    return this.next;
  }

  private start(): Promise<void> {
    this.next = undefined;
    const started = this.flushDevice();
    this.inFlight = started;
    const settled = () => {
      if (this.inFlight === started) this.inFlight = undefined;
    };
    started.then(settled, settled);
    return started;
  }
}
