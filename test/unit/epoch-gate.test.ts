import { rejects } from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError } from "../../agent/src/contracts/index.js";
import { Engine } from "../../agent/src/engine/index.js";
import { EpochGate, Replica } from "../../agent/src/replica/index.js";
import { deferred, drain } from "../support/fake-replica.js";

let dir = "";
test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-gate-"));
});
test.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("a newer admission refuses older requests at once and waits out the ones already running (defect 3)", async () => {
  const persisted: number[] = [];
  const gate = new EpochGate(0, async (e) => {
    persisted.push(e);
  });
  await gate.admit(1);
  const write = deferred();
  const running = gate.run(1, () => write.promise);
  const admission = gate.admit(2);
  await rejects(() => gate.run(1, async () => "late"), FencedError);
  await rejects(() => gate.run(2, async () => "early"), FencedError, "not before the admission completes");
  let admitted = false;
  void admission.then(() => {
    admitted = true;
  });
  await drain();
  assert.not.ok(admitted, "the admission waits for the older write still running");
  assert.equal(persisted, [1]);
  write.resolve();
  await running;
  await admission;
  assert.equal(persisted, [1, 2]);
  assert.is(await gate.run(2, async () => "served"), "served");
  await rejects(() => gate.admit(1), FencedError);
});

test("epoch 0 serves nobody, and an admission that could not be made durable lets nobody in", async () => {
  let failNext = true;
  const gate = new EpochGate(0, async () => {
    if (failNext) {
      failNext = false;
      throw new Error("EIO");
    }
  });
  await rejects(() => gate.run(0, async () => 1), FencedError);
  await rejects(() => gate.admit(3), /EIO/);
  await rejects(() => gate.run(3, async () => 1), FencedError);
  await gate.admit(3);
  assert.is(await gate.run(3, async () => 1), 1);
});

test("concurrent admissions: the highest wins, the lower is refused, each epoch file write is whole (defect 11)", async () => {
  const path = join(dir, "r");
  const replica = await Replica.create(path, { volumeId: "v1", size: 1024 * 1024 });
  const results = await Promise.allSettled([replica.admit(4), replica.admit(5), replica.admit(4)]);
  assert.equal(
    results.map((r) => r.status),
    ["rejected", "fulfilled", "rejected"],
  );
  assert.is(await readFile(join(path, "epoch"), "utf8"), "5\n");
  assert.equal(
    (await readdir(path)).filter((f) => f.endsWith(".tmp")),
    [],
    "no temporary file left behind",
  );
  await replica.close();
  const reopened = await Replica.open(path);
  assert.is(reopened.epoch, 5);
  await reopened.close();
});

test("a corrupt epoch file is refused loudly, never read as epoch 0 (defect 11)", async () => {
  const path = join(dir, "r");
  const replica = await Replica.create(path, { volumeId: "v1", size: 1024 * 1024 });
  await replica.admit(7);
  await replica.close();
  for (const bad of ["", "seven\n", "7x\n", "\n"]) {
    await writeFile(join(path, "epoch"), bad);
    await rejects(
      () => Replica.open(path),
      (err: unknown) => (err as { code?: string }).code === "replica.epoch_corrupt",
      JSON.stringify(bad),
    );
  }
});

test("the engine's own local replica is fenced: once a newer engine started, the old one neither reads nor writes (defect 3)", async () => {
  const replica = await Replica.create(join(dir, "r"), { volumeId: "v1", size: 8 * 1024 * 1024 });
  const old = await Engine.start({ volumeId: "v1", epoch: 1, replicas: [replica.session()] });
  await old.write(0, Buffer.alloc(4096, 1));
  const newer = await Engine.start({ volumeId: "v1", epoch: 2, replicas: [replica.session()] });
  await newer.write(0, Buffer.alloc(4096, 2));
  await rejects(() => old.read(0, 4096), FencedError);
  await rejects(() => old.write(0, Buffer.alloc(4096, 3)), /fenced/);
  assert.is((await newer.read(0, 1))[0], 2, "the stale write never landed");
  await newer.stop();
  await replica.close();
});

test.run();
