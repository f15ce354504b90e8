import { test } from "uvu";
import * as assert from "uvu/assert";
import type { BlockDevice } from "../../agent/src/contracts/index.js";
import { IoShares, TunedDevice } from "../../agent/src/io-tuning/index.js";
import { deferred, drain } from "../support/fake-replica.js";
import { MemoryDevice } from "../support/memory-device.js";

const KiB = 1024;
const SIZE = 4 * 1024 * KiB;
const WINDOW = 64 * KiB;

/** One request the held device has received and not answered yet. */
interface Held {
  op: "read" | "write" | "flush" | "trim" | "writeZeroes";
  offset: number;
  length: number;
  answer: () => void;
}

/**
 * A MemoryDevice whose requests, while `holding`, wait until the test answers them. A read takes its bytes when it
 * arrives and a write applies its bytes when answered, as a real device may: the interleavings a race needs can then
 * be forced one step at a time.
 */
class HeldDevice implements BlockDevice {
  readonly memory = new MemoryDevice(SIZE);
  readonly blockSize = 4096;
  readonly held: Held[] = [];
  holding = true;
  readonly size = SIZE;
  calls: Record<Held["op"], number> = { read: 0, write: 0, flush: 0, trim: 0, writeZeroes: 0 };

  async read(offset: number, length: number): Promise<Buffer> {
    const bytes = await this.memory.read(offset, length);
    await this.hold("read", offset, length);
    return bytes;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.hold("write", offset, data.length);
    await this.memory.write(offset, data);
  }

  async flush(): Promise<void> {
    await this.hold("flush", 0, 0);
    await this.memory.flush();
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.hold("trim", offset, length);
    await this.memory.trim(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.hold("writeZeroes", offset, length);
    await this.memory.writeZeroes(offset, length);
  }

  /** The held request matching `op` and `offset`; fails the test when there is none. */
  take(op: Held["op"], offset = 0): Held {
    const i = this.held.findIndex((h) => h.op === op && h.offset === offset);
    assert.ok(i >= 0, `no ${op} at ${offset} is held (held: ${this.describe()})`);
    const [request] = this.held.splice(i, 1);
    return request as Held;
  }

  /** Answers every held request (and, with `holding` false, every later one at once). */
  release(): void {
    for (const h of this.held.splice(0)) h.answer();
  }

  describe(): string {
    return this.held.map((h) => `${h.op}@${h.offset}+${h.length}`).join(", ") || "none";
  }

  private hold(op: Held["op"], offset: number, length: number): Promise<void> {
    this.calls[op]++;
    if (!this.holding) return Promise.resolve();
    const d = deferred();
    this.held.push({ op, offset, length, answer: d.resolve });
    return d.promise;
  }
}

function tuned(device: BlockDevice, ioProfile: TunedDevice["current"]["ioProfile"], shares = new IoShares()) {
  return new TunedDevice({
    device,
    shares,
    ioProfile,
    ioPriority: "medium",
    readAheadBytes: WINDOW,
    readAheadWindowBytes: WINDOW,
  });
}

/** Records when `p` settles, so a test can ask "has it yet?" after the queue drained. */
function watch(p: Promise<unknown>) {
  const state = { done: false };
  void p.then(() => {
    state.done = true;
  });
  return state;
}

/** Two sequential 4 KiB reads from 0, answered: the second starts a prefetch of [8 KiB, 8 KiB + WINDOW). */
async function startStream(held: HeldDevice, device: TunedDevice): Promise<void> {
  const first = device.read(0, 4 * KiB);
  await drain();
  held.take("read", 0).answer();
  await first;
  const second = device.read(4 * KiB, 4 * KiB);
  await drain();
  held.take("read", 4 * KiB).answer();
  await second;
}

test("sequential: later reads of a stream are served from the window read ahead", async () => {
  const held = new HeldDevice();
  held.holding = false;
  await held.memory.write(0, Buffer.alloc(SIZE / 4, 7));
  // 64 KiB ahead in 16 KiB windows: several prefetches in flight side by side.
  const device = new TunedDevice({
    device: held,
    shares: new IoShares(),
    ioProfile: "sequential",
    ioPriority: "medium",
    readAheadBytes: WINDOW,
    readAheadWindowBytes: WINDOW / 4,
  });
  for (let offset = 0; offset < 256 * KiB; offset += 4 * KiB) {
    const bytes = await device.read(offset, 4 * KiB);
    assert.ok(bytes.equals(Buffer.alloc(4 * KiB, 7)));
  }
  assert.ok(held.calls.read < 24, `64 reads cost ${held.calls.read} device reads`);
  assert.ok(device.stats.readAheadHits > 50);
  assert.ok(device.stats.readAheadBytes <= WINDOW + WINDOW / 2, "memory stays bounded");
});

test("read-ahead never returns stale bytes: a write starts and completes while the prefetch is in flight", async () => {
  const held = new HeldDevice();
  const device = tuned(held, "sequential");
  await startStream(held, device);
  const prefetch = held.take("read", 8 * KiB);
  // The prefetch took the old bytes (zeros); a write lands on them and is acknowledged before the prefetch answers.
  const write = device.write(16 * KiB, Buffer.alloc(4 * KiB, 0xab));
  await drain();
  held.take("write", 16 * KiB).answer();
  await write;
  prefetch.answer();
  await drain();
  held.holding = false;
  const bytes = await device.read(16 * KiB, 4 * KiB);
  assert.ok(bytes.equals(Buffer.alloc(4 * KiB, 0xab)), "the read sees the acknowledged write");
  const untouched = await device.read(8 * KiB, 4 * KiB);
  assert.ok(untouched.equals(Buffer.alloc(4 * KiB)));
});

test("read-ahead never returns stale bytes: a write in flight when the prefetch would start, and a trim after", async () => {
  const held = new HeldDevice();
  const device = tuned(held, "sequential");
  const first = device.read(0, 4 * KiB);
  await drain();
  held.take("read", 0).answer();
  await first;
  // The write is sent, not yet answered, when the stream's second read arrives.
  const write = device.write(20 * KiB, Buffer.alloc(4 * KiB, 0xcd));
  await drain();
  const second = device.read(4 * KiB, 4 * KiB);
  await drain();
  assert.not.ok(
    held.held.some((h) => h.op === "read" && h.offset === 8 * KiB),
    "no prefetch over an unanswered write",
  );
  held.holding = false;
  held.release();
  await Promise.all([write, second]);
  // The next read of the stream prefetches; then a trim over the window's bytes must drop them.
  await device.read(8 * KiB, 4 * KiB);
  await drain();
  await device.trim(20 * KiB, 4 * KiB);
  const bytes = await device.read(20 * KiB, 4 * KiB);
  assert.ok(bytes.equals(Buffer.alloc(4 * KiB)), "the trim is seen");
});

test("a reader waiting on a prefetch that a write overlapped reads the device instead", async () => {
  const held = new HeldDevice();
  const device = tuned(held, "sequential");
  await startStream(held, device);
  const prefetch = held.take("read", 8 * KiB);
  const waiting = device.read(8 * KiB, 4 * KiB);
  await drain();
  const write = device.write(8 * KiB, Buffer.alloc(4 * KiB, 0x11));
  await drain();
  held.take("write", 8 * KiB).answer();
  await write;
  prefetch.answer();
  await drain();
  // The waiting read was issued before the write: either answer is allowed, but it must not be the prefetch's.
  held.take("read", 8 * KiB).answer();
  const bytes = await waiting;
  assert.ok(bytes.equals(Buffer.alloc(4 * KiB, 0x11)));
});

test("retune drops the read-ahead cache; a profile without read-ahead reads the device every time", async () => {
  const held = new HeldDevice();
  held.holding = false;
  const device = tuned(held, "sequential");
  for (let offset = 0; offset < 32 * KiB; offset += 4 * KiB) await device.read(offset, 4 * KiB);
  await drain();
  assert.ok(device.stats.readAheadBytes > 0);
  // Behind the tuned device's back (another path to the same bytes): only a dropped cache can see it.
  await held.memory.write(40 * KiB, Buffer.alloc(4 * KiB, 0x5a));
  device.retune({ ioProfile: "random", ioPriority: "high" });
  assert.is(device.stats.readAheadBytes, 0);
  assert.equal(device.current, { ioProfile: "random", ioPriority: "high" });
  const before = held.calls.read;
  const bytes = await device.read(40 * KiB, 4 * KiB);
  assert.ok(bytes.equals(Buffer.alloc(4 * KiB, 0x5a)));
  for (let offset = 44 * KiB; offset < 64 * KiB; offset += 4 * KiB) await device.read(offset, 4 * KiB);
  assert.is(held.calls.read - before, 6, "random: one device read per read, no prefetch");
});

test("auto does not read ahead (measured slower over page-cached replicas: bench/results/tuning.md)", async () => {
  const held = new HeldDevice();
  held.holding = false;
  const device = tuned(held, "auto");
  for (let offset = 0; offset < 128 * KiB; offset += 4 * KiB) await device.read(offset, 4 * KiB);
  assert.is(device.stats.prefetches, 0);
  assert.is(held.calls.read, 32, "one device read per read");
});

test("flush coalescing: a flush issued during another waits for the next one, and N queued cost one flush", async () => {
  const held = new HeldDevice();
  const device = tuned(held, "db");
  const first = watch(device.flush());
  await drain();
  const queued = [1, 2, 3, 4, 5].map(() => watch(device.flush()));
  await drain();
  assert.is(held.calls.flush, 1, "queued flushes wait");
  held.take("flush").answer();
  await drain();
  assert.ok(first.done);
  assert.ok(
    queued.every((q) => !q.done),
    "no flush is answered by one that began before it was issued",
  );
  assert.is(held.calls.flush, 2, "the five share one flush");
  held.take("flush").answer();
  await drain();
  assert.ok(queued.every((q) => q.done));
  assert.is(held.calls.flush, 2);
});

test("retune while flushes and writes are in flight loses none of them", async () => {
  const held = new HeldDevice();
  const device = tuned(held, "db");
  const first = watch(device.flush());
  await drain();
  const queued = watch(device.flush());
  const write = watch(device.write(0, Buffer.alloc(4 * KiB, 3)));
  await drain();
  device.retune({ ioProfile: "random", ioPriority: "low" });
  const after = watch(device.flush());
  await drain();
  held.holding = false;
  held.release();
  await drain();
  held.release();
  await drain();
  assert.ok(first.done && queued.done && write.done && after.done);
  assert.ok((await device.read(0, 4 * KiB)).equals(Buffer.alloc(4 * KiB, 3)));
});

test("without coalescing (random), every flush reaches the device", async () => {
  const held = new HeldDevice();
  held.holding = false;
  const device = tuned(held, "random");
  await Promise.all([device.flush(), device.flush(), device.flush()]);
  assert.is(held.calls.flush, 3);
});

test("a failed flush fails its own callers only; the queued ones get a flush of their own", async () => {
  const device = new MemoryDevice(SIZE);
  let calls = 0;
  const gate = deferred();
  const failing: BlockDevice = {
    size: SIZE,
    blockSize: 4096,
    read: (o, l) => device.read(o, l),
    write: (o, d) => device.write(o, d),
    trim: (o, l) => device.trim(o, l),
    writeZeroes: (o, l) => device.writeZeroes(o, l),
    flush: async () => {
      if (++calls === 1) {
        await gate.promise;
        throw new Error("EIO");
      }
    },
  };
  const tunedDevice = tuned(failing, "db");
  const first = tunedDevice.flush();
  const second = tunedDevice.flush();
  gate.resolve();
  await first.then(
    () => assert.unreachable("the first flush failed"),
    (err: Error) => assert.is(err.message, "EIO"),
  );
  await second;
  assert.is(calls, 2);
});

/** A device whose requests complete when the test says, in a single queue, to saturate shares deterministically. */
function gatedDevice(log: string[], name: string, gates: Array<() => void>): BlockDevice {
  const memory = new MemoryDevice(SIZE);
  return {
    size: SIZE,
    blockSize: 4096,
    read: async (offset, length) => {
      log.push(name);
      const d = deferred();
      gates.push(d.resolve);
      await d.promise;
      return memory.read(offset, length);
    },
    write: (o, d) => memory.write(o, d),
    flush: () => memory.flush(),
    trim: (o, l) => memory.trim(o, l),
    writeZeroes: (o, l) => memory.writeZeroes(o, l),
  };
}

test("shares: uncontended, a request reaches the device without a turn of the event loop", () => {
  const shares = new IoShares({ limit: 2 });
  const log: string[] = [];
  const device = new TunedDevice({
    device: gatedDevice(log, "v", []),
    shares,
    ioProfile: "random",
    ioPriority: "low",
  });
  void device.read(0, 4096);
  assert.equal(log, ["v"], "sent synchronously");
  assert.equal(shares.load, { inFlight: 1, waiting: 0 });
});

test("shares: saturated, high, medium and low volumes are admitted 4:2:1", async () => {
  const shares = new IoShares({ limit: 4 });
  const log: string[] = [];
  const gates: Array<() => void> = [];
  const volumes = (["high", "medium", "low"] as const).map(
    (ioPriority) =>
      new TunedDevice({
        device: gatedDevice(log, ioPriority, gates),
        shares,
        ioProfile: "random",
        ioPriority,
      }),
  );
  // Every volume keeps more reads waiting than the window admits: all three stay backlogged throughout.
  for (const volume of volumes) for (let i = 0; i < 100; i++) void volume.read(0, 4096);
  await drain();
  const saturatedFrom = log.length;
  for (let i = 0; i < 70; i++) {
    gates.shift()?.();
    await drain();
  }
  const window = log.slice(saturatedFrom);
  const count = (name: string) => window.filter((n) => n === name).length;
  assert.is(window.length, 70);
  assert.equal([count("high"), count("medium"), count("low")], [40, 20, 10]);
  for (const gate of gates.splice(0)) gate();
});

test("shares: a priority changed by retune counts from the volume's next queued request", async () => {
  const shares = new IoShares({ limit: 1 });
  const log: string[] = [];
  const gates: Array<() => void> = [];
  const a = new TunedDevice({
    device: gatedDevice(log, "a", gates),
    shares,
    ioProfile: "none",
    ioPriority: "low",
  });
  const b = new TunedDevice({
    device: gatedDevice(log, "b", gates),
    shares,
    ioProfile: "none",
    ioPriority: "low",
  });
  a.retune({ ioProfile: "none", ioPriority: "high" });
  void a.read(0, 4096);
  for (let i = 0; i < 20; i++) {
    void a.read(0, 4096);
    void b.read(0, 4096);
  }
  for (let i = 0; i < 20; i++) {
    gates.shift()?.();
    await drain();
  }
  const window = log.slice(1);
  assert.is(window.filter((n) => n === "a").length, 16, `a high against b low: ${window.join("")}`);
  for (const gate of gates.splice(0)) gate();
});

test.run();
