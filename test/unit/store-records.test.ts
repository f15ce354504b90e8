// Records read back from the store are checked before anything acts on them (meta/records.ts,
// volumes/record-schemas.ts): records planted in a real local store, read through the catalog, membership and
// recovery as the agent reads them. test/integration/store-records.test.ts plants them in etcd under agents.
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Membership } from "../../agent/src/cluster/index.js";
import { type BadRecordError, LocalStore } from "../../agent/src/meta/index.js";
import { withDefaults } from "../../agent/src/volume-spec/index.js";
import {
  LocalReplicas,
  type ReplicaAccess,
  storeKeys,
  VolumeCatalog,
} from "../../agent/src/volumes/index.js";
import { replicaDir } from "../../agent/src/volumes/local-replicas.js";
import { Recovery } from "../../agent/src/volumes/recovery.js";

const keys = storeKeys("t");
let dir = "";
let store: LocalStore;
let reported: BadRecordError[];
let catalog: VolumeCatalog;

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-records-"));
  store = await LocalStore.open(join(dir, "meta.json"));
  reported = [];
  catalog = new VolumeCatalog(store, keys, (err) => reported.push(err));
});
test.after.each(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const put = (key: string, value: unknown) =>
  store.commit([], [{ put: key, value: typeof value === "string" ? value : JSON.stringify(value) }]);
const reasons = () => reported.map((e) => `${e.key}: ${e.reason}`);
const valid = (name: string, id: string) => ({
  id,
  spec: withDefaults({ name, size: 16 << 20 }),
  replicas: [{ node: "a", pool: "/p", state: "in-sync" }],
  createdAt: "2026-12-03T00:00:00.000Z",
});

test("what the catalog writes reads back as it was", async () => {
  const record = await catalog.create(
    withDefaults({ name: "v", size: 16 << 20, labels: { tier: "db" } }),
    [],
  );
  assert.equal(await catalog.list(), [record]);
  assert.equal(await catalog.get("v"), record);
  assert.equal(reported, []);
});

test("volume records with a path for an id, a bad spec, or filed under another id are left out and reported", async () => {
  await put(keys.volume("00aa"), valid("good", "00aa"));
  await put(keys.volume("../../../etc"), valid("traversal", "../../../etc"));
  await put(keys.volume("00bb"), {
    ...valid("bad", "00bb"),
    spec: { ...valid("x", "00bb").spec, name: "../x" },
  });
  await put(keys.volume("00cc"), valid("impostor", "00aa"));
  await put(keys.volume("00dd"), "{not json");
  await put(keys.volume("00ee"), { ...valid("repl", "00ee"), spec: { ...valid("x", "00ee").spec, repl: 9 } });
  assert.equal(
    (await catalog.list()).map((r) => r.spec.name),
    ["good"],
  );
  const why = reasons();
  assert.is(why.length, 5, why.join("\n"));
  assert.match(why.join("\n"), "/volumes/../../../etc: id: must be 1 to 64 lowercase hex digits");
  assert.match(why.join("\n"), "/volumes/00bb: spec: name:");
  assert.match(why.join("\n"), "/volumes/00cc: it says volume 00aa but is filed as 00cc");
  assert.match(why.join("\n"), "/volumes/00dd: not JSON");
  assert.match(why.join("\n"), "/volumes/00ee: spec: repl:");

  // Read one by one, a bad record is an error that names it, never a record to act on.
  await put(keys.name("evil"), "../../../etc");
  const err = await catalog.get("evil").then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err), "a name must map to a volume id");
  const impostor = await catalog.byId("00cc").catch((e: BadRecordError) => e);
  assert.is((impostor as BadRecordError).code, "store.bad_record");
});

test("a tombstone for a path is never a reason to delete: recovery leaves it and every file alone", async () => {
  await mkdir(join(dir, "pool"));
  const replicas = new LocalReplicas([join(dir, "pool")]);
  const victim = join(dir, "victim");
  await mkdir(victim);
  await writeFile(join(victim, "precious"), "keep me");
  // The id that would lead `rm -rf` from the pool's replica directory to the victim.
  const traversal = relative(join(dir, "pool", "replicas"), victim);
  await put(keys.tombstone("00aa"), {
    id: traversal,
    name: "x",
    reason: "deleted",
    nodes: ["a"],
    since: "2026-12-03T00:00:00.000Z",
  });
  await put(keys.tombstone(traversal), {
    id: traversal,
    name: "x",
    reason: "deleted",
    nodes: ["a"],
    since: "2026-12-03T00:00:00.000Z",
  });
  await put(keys.quarantined("a", traversal), {
    node: "a",
    volumeId: traversal,
    pool: "/p",
    since: "2000-01-01T00:00:00.000Z",
    bytes: null,
  });
  const recovery = new Recovery({
    nodeId: "a",
    store,
    keys,
    catalog,
    replicas,
    access: {} as ReplicaAccess,
    quarantineTtlMs: 1,
    logger: pino({ level: "silent" }),
    report: (err) => reported.push(err),
  });
  assert.equal(await catalog.tombstonesOf("a"), []);
  await recovery.sweep(true);
  await recovery.sweep();
  assert.equal(await recovery.list(), []);
  assert.ok(await stat(join(victim, "precious")), "the victim is untouched");
  assert.ok(reported.length >= 3, reasons().join("\n"));
  // And were such an id to reach the replica layer, it goes no further than the check.
  assert.throws(() => replicaDir(join(dir, "pool"), traversal), /a volume id must be hex/);
});

test("attachments that are not valid: refused when read, left out of a node's list", async () => {
  await put(keys.attachment("00aa"), { node: "a", epoch: "1; rm -rf /", nbdSocket: "/s", since: "now" });
  await put(keys.attachment("../x"), { node: "a", epoch: 1, nbdSocket: "/s", since: "now" });
  await put(keys.attachment("00bb"), { node: "a", epoch: 2, nbdSocket: "/s", since: "now" });
  assert.equal(
    (await catalog.attachmentsOf("a")).map((a) => a.id),
    ["00bb"],
  );
  assert.match(String(await catalog.attachment("00aa").catch((e: Error) => e)), "epoch:");
  assert.match(reasons().join("\n"), "filed under a key that is not a volume id");
});

test("node records with a foreign id, credentials in the API address, or a bad replication address are left out", async () => {
  const node = (id: string, api: string, replication = "10.0.0.1:9002") => ({
    id,
    api,
    replication,
    zone: "z",
    rack: "r",
    capacity: 1,
    free: 1,
    joinedAt: "2026-12-03T00:00:00.000Z",
  });
  await put(`${keys.root}/nodes/node1`, node("node1", "http://10.0.0.1:9001"));
  await put(`${keys.root}/nodes/node9`, node("node1", "http://10.9.9.9:9001"));
  await put(`${keys.root}/nodes/node2`, node("node2", "http://admin:secret@10.0.0.2:9001"));
  await put(`${keys.root}/nodes/node3`, node("node3", "http://10.0.0.3:9001/steal?token="));
  await put(`${keys.root}/nodes/node4`, node("node4", "file:///etc/passwd"));
  await put(`${keys.root}/nodes/node5`, node("node5", "http://10.0.0.5:9001", "10.0.0.5:9002; curl evil"));
  await put(`${keys.root}/nodes/..`, node("..", "http://10.0.0.6:9001"));
  const membership = new Membership({
    store,
    root: keys.root,
    leaseTtlSeconds: 2,
    logger: pino({ level: "silent" }),
    report: (err) => reported.push(err),
  });
  assert.equal(
    (await membership.list()).map((n) => [n.id, n.api]),
    [["node1", "http://10.0.0.1:9001"]],
  );
  const why = reasons().join("\n");
  assert.is(reported.length, 6, why);
  assert.match(why, "/nodes/node9: it says node node1 but is filed as node9");
  assert.match(why, "/nodes/node2: api:");
  assert.match(why, "/nodes/node5: replication: must be HOST:PORT");
});

test.run();
