import { test } from "uvu";
import * as assert from "uvu/assert";
import { REGION_SIZE } from "../../agent/src/contracts/index.js";
import { RegionLocks, regionsOf } from "../../agent/src/engine/region-locks.js";
import { WriteOrder } from "../../agent/src/engine/write-order.js";
import { deferred, drain } from "../support/fake-replica.js";

/** Records when `p` settles, so a test can ask "has it yet?" after the queue drained. */
function watch(p: Promise<unknown>) {
  const state = { done: false };
  void p.then(() => {
    state.done = true;
  });
  return state;
}

test("regionsOf: the regions a byte range touches, a zero-length range counting as its first byte's", () => {
  assert.equal(regionsOf(0, 1), [0]);
  assert.equal(regionsOf(REGION_SIZE - 1, 2), [0, 1]);
  assert.equal(regionsOf(3 * REGION_SIZE, 0), [3]);
  assert.equal(regionsOf(REGION_SIZE, 2 * REGION_SIZE), [1, 2]);
});

test("a write outside any copy enters at once, without a turn of the event loop", () => {
  const locks = new RegionLocks();
  assert.is(locks.enter([1, 2]), undefined);
  locks.leave([1, 2]);
});

test("a copy waits for the writes already in its region, and writes arriving meanwhile wait for the copy", async () => {
  const locks = new RegionLocks();
  assert.is(locks.enter([4]), undefined);
  const copying = deferred();
  let copyStarted = false;
  const copy = locks.exclusive(4, async () => {
    copyStarted = true;
    await copying.promise;
  });
  await drain();
  assert.not.ok(copyStarted, "the copy waits for the write in its region");
  const later = locks.enter([4]);
  assert.ok(later, "a write arriving during the copy must wait");
  const laterWrite = watch(later as Promise<void>);
  locks.leave([4]);
  await drain();
  assert.ok(copyStarted);
  assert.not.ok(laterWrite.done, "the write waits for the copy to end");
  assert.is(locks.enter([5]), undefined, "another region is not held up");
  locks.leave([5]);
  copying.resolve();
  await copy;
  await drain();
  assert.ok(laterWrite.done);
  locks.leave([4]);
});

test("copies of one region take turns; a write spanning a copied region waits for it", async () => {
  const locks = new RegionLocks();
  const order: string[] = [];
  const first = deferred();
  const a = locks.exclusive(2, async () => {
    order.push("a");
    await first.promise;
  });
  const b = locks.exclusive(2, async () => {
    order.push("b");
  });
  const spanning = locks.enter([1, 2, 3]);
  assert.ok(spanning);
  await drain();
  assert.equal(order, ["a"]);
  first.resolve();
  await Promise.all([a, b, spanning]);
  assert.equal(order, ["a", "b"]);
  locks.leave([1, 2, 3]);
});

type Handle = Parameters<WriteOrder["leave"]>[0];

/** A handle WriteOrder must have given at once: nothing overlapping was in flight. */
function atOnce(entered: Handle | Promise<Handle>): Handle {
  assert.not.ok(entered instanceof Promise, "entered without waiting");
  return entered as Handle;
}

test("WriteOrder: an overlapping write waits for the earlier one; disjoint and adjacent ones do not", async () => {
  const order = new WriteOrder();
  const w1 = atOnce(order.enter(0, 8192));
  const adjacent = atOnce(order.enter(8192, 4096));
  const w2 = order.enter(0, 4096);
  const w3 = order.enter(2048, 1);
  assert.ok(w2 instanceof Promise);
  assert.ok(w3 instanceof Promise, "overlaps w1 and the waiting w2: queues behind both");
  const second = watch(w2);
  const third = watch(w3);
  order.leave(w1);
  await drain();
  assert.ok(second.done, "w2 goes once w1 is answered");
  assert.not.ok(third.done, "w3 still waits for w2, in arrival order");
  order.leave(await w2);
  order.leave(adjacent);
  await drain();
  assert.ok(third.done);
  order.leave(await w3);
  atOnce(order.enter(0, 1 << 20));
});

test.run();
