import { rejects } from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError, REGION_SIZE } from "../../agent/src/contracts/index.js";
import { Engine } from "../../agent/src/engine/index.js";
import { InlineIo, Replica, type ReplicaSession } from "../../agent/src/replica/index.js";

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;
let dir = "";

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-replica-"));
});
test.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** An engine's view of `replica` at `epoch`, admitted: what every data request goes through. */
async function admitted(replica: Replica, epoch = 1): Promise<ReplicaSession> {
  const session = replica.session();
  await session.admit(epoch);
  return session;
}

test("a new replica reads zeros and costs almost nothing on disk, even at 1 TiB", async () => {
  const replica = await Replica.create(join(dir, "r"), { volumeId: "v1", size: TiB });
  const data = await (await admitted(replica)).read(TiB - 8192, 8192);
  assert.ok(data.equals(Buffer.alloc(8192)));
  const usage = await replica.usage();
  assert.ok(usage.onDisk < 1024 * 1024, `on disk: ${usage.onDisk}`);
  assert.is(usage.allocated, 0);
  await replica.close();
});

test("writes read back, survive close and reopen, and space grows with data written", async () => {
  const path = join(dir, "r");
  let replica = await Replica.create(path, { volumeId: "v1", size: GiB });
  const block = randomBytes(1024 * 1024);
  let s = await admitted(replica);
  await s.write(512 * 1024 * 1024, block);
  await s.write(4096, block.subarray(0, 4096));
  await s.flush();
  await replica.close();
  replica = await Replica.open(path);
  s = await admitted(replica);
  assert.is(sha(await s.read(512 * 1024 * 1024, block.length)), sha(block));
  assert.is(sha(await s.read(4096, 4096)), sha(block.subarray(0, 4096)));
  const usage = await replica.usage();
  assert.ok(usage.onDisk >= block.length && usage.onDisk < 8 * 1024 * 1024, `on disk: ${usage.onDisk}`);
  await replica.close();
});

test("requests outside the volume are refused, not clipped", async () => {
  const replica = await Replica.create(join(dir, "r"), { volumeId: "v1", size: 1024 * 1024 });
  const s = await admitted(replica);
  await rejects(() => s.read(1024 * 1024 - 4096, 8192), RangeError);
  await rejects(() => s.write(1024 * 1024, Buffer.alloc(1)), RangeError);
  await rejects(() => s.read(-1, 1), RangeError);
  await replica.close();
});

test("write-zeroes and trim zero the range and release whole clusters", async () => {
  const replica = await Replica.create(join(dir, "r"), { volumeId: "v1", size: 64 * 1024 * 1024 });
  const s = await admitted(replica);
  await s.write(0, Buffer.alloc(16 * 1024 * 1024, 0xab));
  await s.flush();
  const before = (await replica.usage()).onDisk;
  await s.trim(1000, 8 * 1024 * 1024);
  await s.writeZeroes(12 * 1024 * 1024, 512);
  const data = await s.read(0, 16 * 1024 * 1024);
  assert.ok(data.subarray(0, 1000).equals(Buffer.alloc(1000, 0xab)));
  assert.ok(data.subarray(1000, 1000 + 8 * 1024 * 1024).equals(Buffer.alloc(8 * 1024 * 1024)));
  assert.is(data[1000 + 8 * 1024 * 1024], 0xab);
  assert.ok(data.subarray(12 * 1024 * 1024, 12 * 1024 * 1024 + 512).equals(Buffer.alloc(512)));
  const after = (await replica.usage()).onDisk;
  assert.ok(after < before - 7 * 1024 * 1024, `before ${before}, after ${after}`);
  await replica.close();
});

test("epochs: a replica refuses an engine below the highest epoch it has seen, across a reopen", async () => {
  const path = join(dir, "r");
  let replica = await Replica.create(path, { volumeId: "v1", size: GiB });
  await replica.admit(3);
  await replica.close();
  replica = await Replica.open(path);
  assert.is(replica.epoch, 3);
  await rejects(() => Engine.start({ volumeId: "v1", epoch: 2, replicas: [replica.session()] }), FencedError);
  const engine = await Engine.start({ volumeId: "v1", epoch: 4, replicas: [replica.session()] });
  await engine.write(0, Buffer.alloc(4096, 1));
  await engine.stop();
  await rejects(() => engine.read(0, 4096), /detached/);
  await replica.close();
});

test("the activity log records a region before its first write and forgets it after idle flushes", async () => {
  const path = join(dir, "r");
  let replica = await Replica.create(path, { volumeId: "v1", size: GiB });
  let s = await admitted(replica);
  await s.write(3 * REGION_SIZE + 10, Buffer.alloc(100, 7));
  await s.write(REGION_SIZE - 50, Buffer.alloc(100, 7));
  assert.equal(replica.activeRegions(), [0, 1, 3]);
  // A crash now (no close, no flush): the log on disk already names the regions.
  replica = await Replica.open(path);
  assert.equal(replica.activeRegions(), [0, 1, 3]);
  s = await admitted(replica);
  await s.write(3 * REGION_SIZE, Buffer.alloc(10, 1));
  await s.flush();
  await s.flush();
  assert.equal(replica.activeRegions(), [3]);
  await s.flush();
  assert.equal(replica.activeRegions(), []);
  await replica.close();
});

test("grow makes the volume bigger, keeps data, and refuses to shrink", async () => {
  const path = join(dir, "r");
  const replica = await Replica.create(path, { volumeId: "v1", size: 8 * 1024 * 1024 });
  const s = await admitted(replica);
  await s.write(0, Buffer.alloc(4096, 9));
  await s.grow(64 * 1024 * 1024);
  assert.is(replica.size, 64 * 1024 * 1024);
  await s.write(60 * 1024 * 1024, Buffer.alloc(4096, 8));
  assert.is((await s.read(0, 1))[0], 9);
  await rejects(() => s.grow(4096), /shrink/);
  await replica.close();
  const reopened = await Replica.open(path);
  assert.is(reopened.size, 64 * 1024 * 1024);
  assert.is((await (await admitted(reopened)).read(60 * 1024 * 1024, 1))[0], 8);
  assert.is((await stat(join(path, "layers/000000/data"))).size, 64 * 1024 * 1024);
  await reopened.close();
});

test("an engine fans writes out to every replica and reads from the first", async () => {
  const a = await Replica.create(join(dir, "a"), { volumeId: "v1", size: GiB });
  const b = await Replica.create(join(dir, "b"), { volumeId: "v1", size: GiB });
  const sb = b.session();
  const engine = await Engine.start({ volumeId: "v1", epoch: 1, replicas: [a.session(), sb] });
  const data = randomBytes(65536);
  await engine.write(GiB - 65536, data);
  await engine.flush();
  assert.is(sha(await sb.read(GiB - 65536, 65536)), sha(data));
  assert.is(sha(await engine.read(GiB - 65536, 65536)), sha(data));
  await engine.stop();
  await a.close();
  await b.close();
});

test("large and unaligned writes land whole: written in pieces, read back byte for byte", async () => {
  const replica = await Replica.create(join(dir, "r"), { volumeId: "v1", size: 8 * 1024 * 1024 });
  const s = await admitted(replica);
  const cases = [
    { offset: 3 * 65536 - 1000, length: 300 * 1024 + 17 },
    { offset: 65536 - 1, length: 2 },
    { offset: 1024 * 1024, length: 2 * 1024 * 1024 },
    { offset: 5 * 1024 * 1024 + 512, length: 65536 },
  ];
  const written = cases.map(({ offset, length }) => ({ offset, data: randomBytes(length) }));
  await Promise.all(written.map(({ offset, data }) => s.write(offset, data)));
  for (const { offset, data } of written) {
    assert.is(sha(await s.read(offset, data.length)), sha(data), `at ${offset}`);
  }
  assert.ok((await s.read(3 * 65536 - 1001, 1)).equals(Buffer.alloc(1)), "the byte before is untouched");
  await replica.close();
});

test("inline I/O: only small page-aligned requests take the inline path, and the bytes are right", async () => {
  const path = join(dir, "f");
  const fd = openSync(path, "w+");
  const policy = new InlineIo();
  assert.ok(policy.tryWrite(fd, Buffer.alloc(4096, 1), 8192));
  assert.not.ok(policy.tryWrite(fd, Buffer.alloc(4096, 2), 100), "unaligned offset");
  assert.not.ok(policy.tryWrite(fd, Buffer.alloc(1000, 3), 0), "partial page");
  assert.not.ok(policy.tryWrite(fd, Buffer.alloc(128 * 1024, 4), 0), "too large");
  policy.configure(false);
  assert.not.ok(policy.tryWrite(fd, Buffer.alloc(4096, 5), 0), "switched off");
  closeSync(fd);
  const data = readFileSync(path);
  assert.is(data.length, 12288);
  assert.ok(data.subarray(8192).equals(Buffer.alloc(4096, 1)));
  assert.is(policy.writes.counts.inline, 1);
  policy.configure(true);
  const fd2 = openSync(path, "r");
  const back = Buffer.alloc(4096);
  assert.ok(policy.tryRead(fd2, back, 8192));
  assert.ok(back.equals(Buffer.alloc(4096, 1)));
  const pastEnd = Buffer.alloc(4096, 9);
  assert.ok(policy.tryRead(fd2, pastEnd, 16384));
  assert.ok(pastEnd.equals(Buffer.alloc(4096)), "past the end reads zeros");
  assert.not.ok(policy.tryRead(fd2, Buffer.alloc(512), 0), "partial page");
  closeSync(fd2);
});

test("inline I/O backs off to the thread pool once several requests in a window were slow", async () => {
  const fd = openSync(join(dir, "g"), "w+");
  // Every request counts as slow: the first few still go inline, then the path closes.
  const policy = new InlineIo(true, 0n, 0n);
  const taken = Array.from({ length: 8 }, () => policy.tryWrite(fd, Buffer.alloc(4096), 0));
  assert.equal(taken, [true, true, true, true, true, false, false, false]);
  assert.ok(policy.tryRead(fd, Buffer.alloc(4096), 0), "reads have their own guard");
  closeSync(fd);
});

test.run();
