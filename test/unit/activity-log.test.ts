import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActivityLog } from "../../agent/src/replica/activity-log.js";

const REGION = 4 * 1024 * 1024;
let dir = "";

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-activity-"));
});
test.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = () => ActivityLog.open(join(dir, "activity.map"), 64 * REGION, REGION);

/** Two whole flush cycles with no write: what it takes a settled region to leave the log. */
async function quietFlushes(log: ActivityLog, n = 2): Promise<void> {
  for (let i = 0; i < n; i++) await log.beginFlush()();
}

test("a region is durable in the log before its first write may apply, and leaves after quiet flushes", async () => {
  const log = await open();
  const wait = log.activate(5 * REGION, 10);
  assert.ok(wait, "the first write into a region waits for the log");
  await wait;
  assert.equal((await open()).regions(), [5], "on disk before the write applies");
  assert.is(log.activate(5 * REGION + 100, 10), null, "a logged region costs a later write nothing");
  log.settle(5 * REGION, 10);
  log.settle(5 * REGION + 100, 10);
  await quietFlushes(log, 2);
  assert.equal(
    log.regions(),
    [5],
    "the first flush after a write does not count, the second is one quiet flush",
  );
  await quietFlushes(log, 1);
  assert.equal(log.regions(), []);
});

test("a write that spans regions logs each of them", async () => {
  const log = await open();
  await log.activate(2 * REGION - 1, REGION + 2);
  assert.equal(log.regions(), [1, 2, 3]);
});

test("concurrent flushes: a write that entered after the first began keeps its region logged (defect 7)", async () => {
  const log = await open();
  await log.activate(3 * REGION, 4096);
  log.settle(3 * REGION, 4096);
  await quietFlushes(log, 2); // region 3 is quiet once: the next quiet flush would clear it
  const first = log.beginFlush();
  // A write enters region 3 while the first flush syncs; a second flush begins before the first completes.
  assert.is(log.activate(3 * REGION, 4096), null);
  const second = log.beginFlush();
  await first();
  assert.equal(log.regions(), [3], "the first flush began before the write: it cannot vouch for it");
  await second();
  assert.equal(log.regions(), [3], "the write was still running when the second flush began");
  log.settle(3 * REGION, 4096);
  await quietFlushes(log, 3);
  assert.equal(log.regions(), []);
});

test("a write still applying when a flush completes keeps its region, however many flushes pass", async () => {
  const log = await open();
  await log.activate(7 * REGION, 4096);
  await quietFlushes(log, 4);
  assert.equal(log.regions(), [7]);
  log.settle(7 * REGION, 4096);
  await quietFlushes(log, 3);
  assert.equal(log.regions(), []);
});

test("a region logged before a crash is still logged when the log is opened again, until quiet flushes", async () => {
  const log = await open();
  await log.activate(0, 4096);
  await log.activate(9 * REGION, 4096);
  const reopened = await open();
  assert.equal(reopened.regions(), [0, 9]);
  await quietFlushes(reopened, 2);
  assert.equal(reopened.regions(), []);
});

test.run();
