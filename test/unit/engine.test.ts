import { rejects } from "node:assert/strict";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { REGION_SIZE, type ReplicaTarget } from "../../agent/src/contracts/index.js";
import { Engine } from "../../agent/src/engine/index.js";
import { connectionLost, deferred, drain, FakeReplica, ioError } from "../support/fake-replica.js";

const SIZE = 16 * REGION_SIZE;
const block = (fill: number, length = 4096) => Buffer.alloc(length, fill);

/** An engine over fresh fakes; `dropped` lists what onReplicaFailed was told, in order. */
async function engineOver(replicas: FakeReplica[], epoch = 1) {
  const dropped: string[] = [];
  const engine = await Engine.start({
    volumeId: "v",
    epoch,
    replicas,
    onReplicaFailed: async (failed) => {
      dropped.push(...failed.map((r) => (r as FakeReplica).name));
    },
  });
  return { engine, dropped };
}

const names = (targets: readonly ReplicaTarget[]) => targets.map((r) => (r as FakeReplica).name);

test("writes that fail together are all recorded as missed, whichever failure the engine sees first (defect 1)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine, dropped } = await engineOver([a, b]);
  // b stops answering: every request to it hangs, then its connection dies and they all fail at once.
  const dead = deferred();
  b.hook = () => dead.promise;
  const regions = [1, 5, 9, 13];
  const writes = regions.map((r, i) => engine.write(r * REGION_SIZE, block(10 + i)));
  const flush = engine.flush();
  await drain();
  dead.reject(new Error("connection closed"));
  await Promise.all([...writes, flush]);
  assert.equal(dropped, ["b"]);
  assert.equal(engine.missedSince(b), regions, "every write b never acknowledged is in its missed set");

  // b comes back with what it had; an incremental resync from the missed set leaves it identical to a.
  b.hook = undefined;
  await engine.write(3 * REGION_SIZE, block(99));
  await engine.resync(b, async () => {}, { dropped: b });
  assert.ok(a.data.equals(b.data), "after resync, b holds every acknowledged write");
  assert.equal(await engine.check(), []);
});

test("a replica dropped without a failed write (evicted) still has a missed set from the moment it is dropped", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a, b]);
  await engine.evict(b, new Error("node down"));
  await engine.write(2 * REGION_SIZE, block(7));
  assert.equal(engine.missedSince(b), [2]);
});

test("overlapping writes in flight land in the same order on every replica (defect 8)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a, b]);
  // On b, the first write is slow: without ordering, the second overtakes it there and not on a.
  const slow = deferred();
  b.hook = (op) => (op.kind === "write" && op.offset === 0 ? slow.promise : undefined);
  const first = engine.write(0, block(1, 8192));
  const second = engine.write(4096, block(2, 8192));
  await drain();
  slow.resolve();
  await Promise.all([first, second]);
  assert.ok(a.data.equals(b.data), "the replicas agree");
  assert.is(a.data[4096], 2, "the later write wins");
  // Writes that do not overlap are not held back by each other.
  const held = deferred();
  b.hook = (op) => (op.offset === 0 ? held.promise : undefined);
  const stuck = engine.write(0, block(3));
  const apart = engine.write(REGION_SIZE, block(4));
  await apart;
  held.resolve();
  await stuck;
});

test("a write overlapping a trim or a zeroing waits for it too", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a, b]);
  await engine.write(0, block(5, 16384));
  const slow = deferred();
  b.hook = (op) => (op.kind === "zero" ? slow.promise : undefined);
  const zero = engine.writeZeroes(0, 16384);
  const write = engine.write(8192, block(6));
  await drain();
  slow.resolve();
  await Promise.all([zero, write]);
  assert.ok(a.data.equals(b.data));
  assert.is(a.data[8192], 6);
});

test("start: a replica whose admit fails is dropped before any I/O, the others serve (defect 5)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const c = new FakeReplica("c", SIZE);
  c.hook = (op) => {
    if (op.kind === "admit") throw new Error("no answer within 10000 ms");
  };
  const { engine, dropped } = await engineOver([a, b, c]);
  assert.equal(dropped, ["c"]);
  assert.equal(names(engine.inSync), ["a", "b"]);
  await engine.write(0, block(1));
  assert.is(c.applied.length, 0);
});

test("start: a replica that fails during the reconcile is dropped, and the reconcile still covers every logged region", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const c = new FakeReplica("c", SIZE);
  // An engine crashed mid-write: region 2 differs on c, region 4 on b, and b dies during the reconcile.
  a.data.fill(1, 2 * REGION_SIZE, 2 * REGION_SIZE + 10);
  b.data.fill(1, 2 * REGION_SIZE, 2 * REGION_SIZE + 10);
  b.data.fill(8, 4 * REGION_SIZE, 4 * REGION_SIZE + 10);
  a.logged = [2];
  b.logged = [4];
  c.logged = [2];
  b.hook = (op) => {
    if (op.kind === "checksum" && op.offset === 4) throw new Error("connection closed");
  };
  const { engine, dropped } = await engineOver([a, b, c]);
  assert.equal(dropped, ["b"]);
  assert.ok(a.data.equals(c.data), "the survivors agree on every logged region");
  assert.equal(await engine.check(), []);
});

test("start: every replica failing its admit fails the start; a fenced one fails it at once", async () => {
  const a = new FakeReplica("a", SIZE);
  a.hook = () => {
    throw new Error("connection refused");
  };
  await rejects(() => engineOver([a]), /connection refused/);
  const b = new FakeReplica("b", SIZE);
  const c = new FakeReplica("c", SIZE);
  c.highest = 9;
  await rejects(() => engineOver([b, c], 3), /fenced/);
});

test("start after a crash mid-grow: every replica grows to the largest size first", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE / 2);
  const { engine } = await engineOver([a, b]);
  assert.is(engine.size, SIZE);
  assert.is(b.size, SIZE);
});

test("a fenced request stops the engine for good", async () => {
  const a = new FakeReplica("a", SIZE);
  const { engine } = await engineOver([a], 1);
  a.highest = 2;
  await rejects(() => engine.write(0, block(1)), /fenced/);
  assert.ok(engine.isStopped);
  await rejects(() => engine.read(0, 4096), /detached or fenced/);
});

/** A lease a test holds or lets lapse; `regained` settles when the test says so. */
function testLease() {
  let pending = deferred();
  const lease = {
    held: true,
    regained: () => pending.promise,
    /** The lease is back, and the attachment proven: waiting requests go on. */
    regain() {
      lease.held = true;
      pending.resolve();
      pending = deferred();
    },
    /** The lease is back, but another node holds the attachment now. */
    lose() {
      pending.reject(new Error("attached elsewhere now"));
    },
  };
  return lease;
}

test("self-fencing: while the lease is in doubt no request reaches a replica or is answered; it resumes once regained (defect 4)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const lease = testLease();
  const engine = await Engine.start({ volumeId: "v", epoch: 1, replicas: [a, b], lease });
  await engine.write(0, block(1));
  lease.held = false;
  let answered = 0;
  const requests = [engine.write(4096, block(2)), engine.read(0, 4096), engine.flush()].map((p) =>
    p.then(() => answered++),
  );
  await drain();
  assert.is(answered, 0, "nothing is acknowledged without the lease");
  assert.is(a.applied.length, 1, "nothing reached a replica");
  assert.is(b.applied.length, 1);
  lease.regain();
  await Promise.all(requests);
  assert.is(a.data[4096], 2);
});

test("self-fencing: when the attachment proves lost, waiting requests fail and the engine stops for good", async () => {
  const a = new FakeReplica("a", SIZE);
  const lease = testLease();
  const engine = await Engine.start({ volumeId: "v", epoch: 1, replicas: [a], lease });
  lease.held = false;
  const write = engine.write(0, block(3));
  await drain();
  lease.lose();
  await rejects(() => write, /attached elsewhere/);
  assert.ok(engine.isStopped);
  assert.is(a.applied.length, 0);
});

test("self-fencing: stopping without the lease halts at once, without a flush, and wakes waiting requests", async () => {
  const a = new FakeReplica("a", SIZE);
  const lease = testLease();
  const engine = await Engine.start({ volumeId: "v", epoch: 1, replicas: [a], lease });
  let flushes = 0;
  a.hook = (op) => {
    if (op.kind === "flush") flushes++;
  };
  lease.held = false;
  const waiting = engine.read(0, 4096);
  await engine.stop();
  await rejects(() => waiting, /detached or fenced/);
  assert.is(flushes, 0);
});

test("a replica whose flush failed with EIO is rebuilt from the source, not compared through its page cache (defect 10)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine, dropped } = await engineOver([a, b]);
  await engine.write(3 * REGION_SIZE, block(7));
  // b's writeback fails: its pages are marked clean, the bytes never reach its disk, reads still return them.
  b.hook = (op) => {
    if (op.kind === "flush") throw ioError("EIO");
  };
  await engine.flush();
  assert.equal(dropped, ["b"]);
  b.hook = undefined;
  const plan = await engine.resync(b, async () => {}, { dropped: b });
  b.dropCache();
  assert.ok(a.data.equals(b.data), "b's disk holds every acknowledged write once its cache is gone");
  assert.is(plan, "rebuild");
});

test("a replica dropped for a dead connection resyncs incrementally: only a flush I/O error forces a rebuild", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a, b]);
  b.hook = (op) => {
    if (op.kind === "flush") throw connectionLost();
  };
  await engine.flush();
  b.hook = undefined;
  await engine.write(5 * REGION_SIZE, block(4));
  assert.is(await engine.resync(b, async () => {}, { dropped: b }), "incremental");
  assert.ok(a.data.equals(b.data));
});

test("a resync whose last flush failed with EIO leaves a rebuild for the next try", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a]);
  await engine.write(2 * REGION_SIZE, block(9));
  b.hook = (op) => {
    if (op.kind === "flush") throw ioError("EIO");
  };
  await rejects(() => engine.resync(b, async () => {}), /EIO/);
  b.hook = undefined;
  const plan = await engine.resync(b, async () => {}, { dropped: b });
  b.dropCache();
  assert.ok(a.data.equals(b.data), "the second resync copied what the first never made durable");
  assert.is(plan, "rebuild");
});

test("a write that fails on every in-sync replica, landing on some, is reconciled before its region serves again (defect 3)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine, dropped } = await engineOver([a, b]);
  // ENOSPC on both: on a after the bytes landed, on b before.
  a.afterHook = (op) => {
    if (op.kind === "write") throw ioError("ENOSPC");
  };
  b.hook = (op) => {
    if (op.kind === "write") throw ioError("ENOSPC");
  };
  await rejects(() => engine.write(6 * REGION_SIZE + 8192, block(3)), /ENOSPC/);
  a.afterHook = undefined;
  b.hook = undefined;
  assert.equal(
    names(engine.inSync),
    ["a", "b"],
    "both stay in sync: the request failed, none was acknowledged",
  );
  assert.equal(dropped, []);
  const read = await engine.read(6 * REGION_SIZE, 16384);
  assert.ok(a.data.equals(b.data), "the replicas agree before the region is read");
  assert.ok(read.equals(a.data.subarray(6 * REGION_SIZE, 6 * REGION_SIZE + 16384)));
  assert.equal(await engine.check(), []);
});

test("without onReplicaFailed, a write one replica failed is reconciled before the next write into its region", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const engine = await Engine.start({ volumeId: "v", epoch: 1, replicas: [a, b] });
  b.hook = (op) => {
    if (op.kind === "write") throw ioError("EIO");
  };
  await rejects(() => engine.write(2 * REGION_SIZE, block(8)), /EIO/);
  b.hook = undefined;
  await engine.write(2 * REGION_SIZE + 65536, block(9));
  assert.ok(
    a.data.equals(b.data),
    "b got the bytes a kept before the next write into the region was answered",
  );
});

test("a suspect region that cannot be reconciled fails the next request into it, and stays suspect until it can be", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const engine = await Engine.start({ volumeId: "v", epoch: 1, replicas: [a, b] });
  b.hook = (op) => {
    if (op.kind === "write") throw ioError("ENOSPC");
  };
  await rejects(() => engine.write(4 * REGION_SIZE, block(5)), /ENOSPC/);
  await rejects(() => engine.read(4 * REGION_SIZE, 4096), /ENOSPC/);
  b.hook = undefined;
  assert.is((await engine.read(4 * REGION_SIZE, 4096))[0], 5);
  assert.ok(a.data.equals(b.data));
});

test("a replica that fails the copy of a suspect region is dropped, and the request is served by the rest", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine, dropped } = await engineOver([a, b]);
  a.afterHook = () => {
    throw ioError("ENOSPC");
  };
  b.hook = (op) => {
    if (op.kind === "write") throw ioError("ENOSPC");
  };
  await rejects(() => engine.write(REGION_SIZE, block(6)), /ENOSPC/);
  a.afterHook = undefined;
  await engine.write(REGION_SIZE + 4096, block(7));
  assert.equal(dropped, ["b"], "b could not take the region's bytes: it left the in-sync set");
  assert.equal(names(engine.inSync), ["a"]);
  assert.equal(engine.missedSince(b), [1]);
});

test("a replica whose connection breaks while the volume is idle leaves the in-sync set at once, store first (defect 12)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const c = new FakeReplica("c", SIZE);
  const { engine, dropped } = await engineOver([a, b, c]);
  // No request is in flight: only the broken connection tells.
  b.loseConnection();
  await drain();
  assert.equal(dropped, ["b"], "the store learns without waiting for a write to fail");
  assert.equal(names(engine.inSync), ["a", "c"]);
  assert.equal(engine.missedSince(b), [], "its resync starts from an empty missed set");
  await engine.write(REGION_SIZE, block(5));
  assert.equal(engine.missedSince(b), [1]);
});

test("a replica catching up whose connection breaks fails its resync and never joins the in-sync set", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const { engine } = await engineOver([a]);
  const held = deferred();
  b.hook = (op) => (op.kind === "checksum" && op.offset === 3 ? held.promise : undefined);
  let marked = false;
  const resync = engine.resync(b, async () => {
    marked = true;
  });
  await drain();
  b.loseConnection();
  held.resolve();
  await rejects(resync);
  assert.not.ok(marked, "the store never shows it in sync");
  assert.equal(names(engine.inSync), ["a"]);
});

test("a replica that fails during a check leaves the in-sync set, and the check fails saying so (defect 12)", async () => {
  const a = new FakeReplica("a", SIZE);
  const b = new FakeReplica("b", SIZE);
  const c = new FakeReplica("c", SIZE);
  const { engine, dropped } = await engineOver([a, b, c]);
  c.hook = (op) => {
    if (op.kind === "checksum" && op.offset === 7) throw connectionLost();
  };
  await rejects(engine.check(), (err: { code?: string; message: string }) => {
    assert.is(err.code, "engine.check_failed");
    assert.match(err.message, /left the in-sync set/);
    return true;
  });
  assert.equal(dropped, ["c"]);
  assert.equal(names(engine.inSync), ["a", "b"]);
  assert.equal(await engine.check(), [], "a check over the rest completes");
});

test.run();
