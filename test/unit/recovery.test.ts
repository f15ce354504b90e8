// Tombstones, quarantine and the data dir's identity (docs/decisions/0009-recovery.md), on the local store and real
// replica directories; test/integration/recovery.test.ts drives the same through agents.
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAgentConfig } from "../../agent/src/config/index.js";
import { HoldfastError, InputError } from "../../agent/src/errors.js";
import { LocalStore } from "../../agent/src/meta/index.js";
import { checkIdentity } from "../../agent/src/node-identity.js";
import { withDefaults } from "../../agent/src/volume-spec/index.js";
import {
  LocalReplicas,
  type ReplicaAccess,
  storeKeys,
  VolumeCatalog,
} from "../../agent/src/volumes/index.js";
import { Recovery } from "../../agent/src/volumes/recovery.js";

let dir = "";
let store: LocalStore;
const keys = storeKeys("t");
let catalog: VolumeCatalog;
let replicas: LocalReplicas;

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-recovery-"));
  store = await LocalStore.open(join(dir, "meta.json"));
  catalog = new VolumeCatalog(store, keys, (err) => assert.unreachable(err.message));
  await mkdir(join(dir, "pool"));
  replicas = new LocalReplicas([join(dir, "pool")]);
});
test.after.each(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const spec = (name: string) => withDefaults({ name, size: 16 * 1024 * 1024 });
const on = (...nodes: string[]) => nodes.map((node) => ({ node, pool: "/p", state: "in-sync" as const }));
const tombstone = async (id: string) => {
  const entry = await store.get(keys.tombstone(id));
  return entry ? (JSON.parse(entry.value) as { reason: string; nodes: string[] }) : undefined;
};

function recovery(nodeId: string, quarantineTtlMs = 3_600_000): Recovery {
  return new Recovery({
    nodeId,
    store,
    keys,
    catalog,
    replicas,
    access: {} as ReplicaAccess,
    quarantineTtlMs,
    logger: pino({ level: "silent" }),
    report: (err) => assert.unreachable(err.message),
  });
}

test("a deleted volume leaves a tombstone naming its nodes; the last node to release it removes it", async () => {
  const record = await catalog.create(spec("v"), on("a", "b"));
  await catalog.remove(record);
  const written = await tombstone(record.id);
  assert.equal([written?.reason, written?.nodes], ["deleted", ["a", "b"]]);
  assert.equal(
    (await catalog.tombstonesOf("b")).map((t) => t.id),
    [record.id],
  );
  await catalog.release(record.id, "a");
  assert.equal((await tombstone(record.id))?.nodes, ["b"]);
  await catalog.release(record.id, "b");
  assert.is(await tombstone(record.id), undefined);
});

test("a replica dropped from a volume's list is recorded; added back, it comes off the record", async () => {
  const record = await catalog.create(spec("v"), on("a", "b", "c"));
  const { epoch } = await catalog.attach(record.id, { node: "a", nbdSocket: "/s" });
  await catalog.updateReplicas(record.id, epoch, (rs) => rs.filter((r) => r.node !== "c"));
  const written = await tombstone(record.id);
  assert.equal([written?.reason, written?.nodes], ["removed", ["c"]]);
  await catalog.updateReplicas(record.id, epoch, (rs) => rs.map((r) => ({ ...r, state: "down" as const })));
  assert.equal((await tombstone(record.id))?.nodes, ["c"], "a state change records nothing");
  await catalog.updateReplicas(record.id, epoch, (rs) => [...rs, ...on("c")]);
  assert.is(await tombstone(record.id), undefined);
});

test("at start an unlisted replica is quarantined, kept, published; later sweeps leave new ones alone", async () => {
  const listed = await catalog.create(spec("v"), on("a"));
  await replicas.create({ volumeId: listed.id, size: 16 << 20, blockSize: 4096 });
  await replicas.create({ volumeId: "0a01", size: 16 << 20, blockSize: 4096 });
  await recovery("a").sweep(true);
  assert.equal((await replicas.list()).sort(), [listed.id, "0a01"].sort());
  assert.equal(
    (await recovery("a").list()).map((q) => [q.node, q.volumeId]),
    [["a", "0a01"]],
  );
  assert.is(await replicas.quarantinedSince(listed.id), undefined);

  await replicas.create({ volumeId: "0a05", size: 16 << 20, blockSize: 4096 });
  await recovery("a").sweep();
  assert.is(await replicas.quarantinedSince("0a05"), undefined);
});

test("a quarantined replica that a record lists after all loses its mark and is kept", async () => {
  await replicas.create({ volumeId: "0a02", size: 16 << 20, blockSize: 4096 });
  await recovery("a").sweep(true);
  assert.ok(await replicas.quarantinedSince("0a02"));
  const record = await catalog.create(spec("late"), on("a"), "0a02");
  await recovery("a").sweep();
  assert.is(await replicas.quarantinedSince(record.id), undefined);
  assert.equal(await recovery("a").list(), []);
  assert.equal(await replicas.list(), ["0a02"]);
});

test("a quarantined replica is destroyed once older than the TTL, and not before", async () => {
  await replicas.create({ volumeId: "0a03", size: 16 << 20, blockSize: 4096 });
  await recovery("a").sweep(true);
  await recovery("a", 3_600_000).sweep();
  assert.equal(await replicas.list(), ["0a03"]);
  const twoHoursAgo = new Date(Date.now() - 7_200_000).toISOString();
  await writeFile(
    join(dir, "pool", "replicas", "0a03", "quarantined.json"),
    JSON.stringify({ since: twoHoursAgo }),
  );
  await recovery("a", 3_600_000).sweep();
  assert.equal(await readdir(join(dir, "pool", "replicas")), []);
  assert.equal(await recovery("a").list(), []);
});

test("a tombstone destroys only its own node's replica of its volume", async () => {
  const gone = await catalog.create(spec("gone"), on("a", "b"));
  await replicas.create({ volumeId: gone.id, size: 16 << 20, blockSize: 4096 });
  await catalog.remove(gone);
  await recovery("a").sweep(true);
  assert.equal(await replicas.list(), []);
  assert.equal((await tombstone(gone.id))?.nodes, ["b"]);
});

test("purge refuses an unknown id, and a replica a record lists", async () => {
  const err = await recovery("a")
    .purge({ id: "nope" })
    .catch((e: HoldfastError) => e);
  assert.instance(err, HoldfastError);
  assert.is((err as HoldfastError).code, "quarantine.not_found");
  await replicas.create({ volumeId: "0a04", size: 16 << 20, blockSize: 4096 });
  await recovery("a").sweep(true);
  await catalog.create(spec("x"), on("a"), "0a04");
  const listed = await recovery("a")
    .purge({ id: "0a04" })
    .catch((e: HoldfastError) => e);
  assert.is((listed as HoldfastError).code, "quarantine.listed");
  assert.equal(await replicas.list(), ["0a04"]);
});

test("identity: another node id, another cluster or a store without the cluster is refused, unless adopted", async () => {
  const config = (flags: Record<string, unknown>) =>
    loadAgentConfig({ flags: { dataDir: join(dir, "data"), cluster: "t", nodeId: "a", ...flags } });
  await mkdir(join(dir, "data"));
  const refusal = (flags: Record<string, unknown>, s = store) =>
    config(flags)
      .then((c) => checkIdentity(c, s, storeKeys(c.cluster), true))
      .then(
        () => undefined,
        (e: HoldfastError) => [e.code, e.field, e instanceof InputError, e.message],
      );
  assert.is(await refusal({}), undefined, "first start records the identity");
  assert.is(await refusal({}), undefined);
  const renamed = await refusal({ nodeId: "b" });
  assert.equal(renamed?.slice(0, 3), ["identity.mismatch", "nodeId", true]);
  assert.match(String(renamed?.[3]), /node "a".*node "b".*--adopt-identity/);
  assert.equal((await refusal({ cluster: "u" }))?.slice(0, 2), ["identity.mismatch", "cluster"]);
  const empty = await LocalStore.open(join(dir, "empty.json"));
  try {
    assert.equal((await refusal({}, empty))?.slice(0, 2), ["identity.mismatch", "store"]);
    assert.is(await refusal({ adoptIdentity: true }, empty), undefined);
    assert.is(await refusal({}, empty), undefined, "adopted once, the new store is the recorded one");
  } finally {
    await empty.close();
  }
  assert.is(await refusal({ nodeId: "b", adoptIdentity: true }), undefined);
  assert.is(await refusal({ nodeId: "b" }), undefined);
});

test.run();
