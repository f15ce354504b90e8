import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Membership, NodeStatus } from "../../agent/src/cluster/index.js";
import { LocalStore } from "../../agent/src/meta/index.js";
import {
  createClusterCa,
  issueNodeIdentity,
  type NodeIdentity,
  ReplicaServer,
} from "../../agent/src/transport/index.js";
import { parseSpec, withDefaults } from "../../agent/src/volume-spec/index.js";
import {
  LocalReplicas,
  ReplicaAccess,
  ReplicaAuthority,
  type ReplicaRecord,
  storeKeys,
  VolumeCatalog,
} from "../../agent/src/volumes/index.js";
import { LocalVolumes } from "../../agent/src/volumes/local-volumes.js";
import { ReplicaSet } from "../../agent/src/volumes/replica-set.js";

// Attach and repair on node-a while node-b and node-c are frozen: their replication ports accept TCP and never
// complete a TLS handshake. node-d is healthy (a real replication port). The local replicas and the catalog are real
// (a LocalStore); the node list is fixed, every node up. Dials are bounded at DIAL ms here.
const DIAL = 1500;
const SIZE = 16 * 1024 * 1024;
const logger = pino({ level: "silent" });
let dir = "";
let local: LocalReplicas;
let remoteD: LocalReplicas;
let catalog: VolumeCatalog;
let access: ReplicaAccess;
let serverD: ReplicaServer;
const frozen: Server[] = [];
const sockets = new Set<Socket>();

async function frozenPort(): Promise<number> {
  const server = createServer((socket) => sockets.add(socket));
  frozen.push(server);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );
}

function node(id: string, replication: string): NodeStatus {
  return {
    id,
    api: "",
    replication,
    zone: id,
    rack: "",
    capacity: 0,
    free: 0,
    joinedAt: "",
    state: "up",
  };
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-frozen-"));
  const ca = await createClusterCa({ cluster: "t" });
  const id = (nodeId: string): Promise<NodeIdentity> =>
    issueNodeIdentity(ca, { nodeId, addresses: ["127.0.0.1"] });
  for (const pool of ["a", "d"]) await mkdir(join(dir, pool));
  local = new LocalReplicas([join(dir, "a")]);
  remoteD = new LocalReplicas([join(dir, "d")]);
  catalog = new VolumeCatalog(await LocalStore.open(join(dir, "meta.json")), storeKeys("t"), (err) =>
    assert.unreachable(err.message),
  );
  serverD = new ReplicaServer({
    identity: await id("node-d"),
    host: "127.0.0.1",
    port: 0,
    logger,
    openReplica: (v) => remoteD.acquire(v),
    closeReplica: (v) => void remoteD.release(v),
    createReplica: (spec) => remoteD.create(spec),
    destroyReplica: (v) => remoteD.destroy(v),
    policy: new ReplicaAuthority({ nodeId: "node-d", catalog }),
  });
  const nodes = [
    node("node-a", ""),
    node("node-b", `127.0.0.1:${await frozenPort()}`),
    node("node-c", `127.0.0.1:${await frozenPort()}`),
    node("node-d", `127.0.0.1:${await serverD.listen()}`),
  ];
  access = new ReplicaAccess({
    nodeId: "node-a",
    local,
    membership: { list: async () => nodes } as unknown as Membership,
    identity: await id("node-a"),
    timeouts: { connectTimeoutMs: DIAL },
  });
});
test.after(async () => {
  for (const socket of sockets) socket.destroy();
  for (const server of frozen) server.close();
  await serverD?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A volume with a local replica in sync and the others as given; each remote one exists on node-d if there. */
async function volume(name: string, id: string, others: Array<[string, ReplicaRecord["state"]]>) {
  const { pool } = await local.create({ volumeId: id, size: SIZE, blockSize: 4096 });
  const replicas: ReplicaRecord[] = [{ node: "node-a", pool, state: "in-sync" }];
  for (const [n, state] of others) {
    if (n === "node-d") await remoteD.create({ volumeId: id, size: SIZE, blockSize: 4096 });
    replicas.push({ node: n, pool: "p", state });
  }
  const spec = withDefaults(parseSpec(`name=${name},size=16M,repl=${replicas.length}`));
  return catalog.create(spec, replicas, id);
}

const states = async (id: string) =>
  Object.fromEntries((await catalog.get(id)).replicas.map((r) => [r.node, r.state]));

test("attach with two frozen in-sync replicas completes within one dial bound, on the local one; both are down in the store first", async () => {
  const record = await volume("two-frozen", "0a01", [
    ["node-b", "in-sync"],
    ["node-c", "in-sync"],
  ]);
  const attachment = await catalog.attach(record.id, { node: "node-a", nbdSocket: "unused" });
  const started = Date.now();
  const set = await ReplicaSet.open({
    record,
    attachment,
    access,
    catalog,
    logger,
    replicaTimeoutMs: 60_000,
  });
  const took = Date.now() - started;
  try {
    // One after the other, the two dials would take two bounds.
    assert.ok(took < DIAL * 1.5, `attach took ${took} ms; the dial bound is ${DIAL} ms`);
    assert.equal(await states(record.id), { "node-a": "in-sync", "node-b": "down", "node-c": "down" });
    assert.is(set.engine.inSync.length, 1);
    const data = Buffer.alloc(4096, 0x5a);
    await set.engine.write(8192, data);
    assert.equal(await set.engine.read(8192, 4096), data);
  } finally {
    await set.engine.stop();
    await set.close();
  }
});

test("repairAll: a volume whose replica's node is frozen does not hold up another volume's resync", async () => {
  const volumes = new LocalVolumes({
    nodeId: "node-a",
    runDir: join(dir, "run"),
    mountDir: join(dir, "mnt"),
    catalog,
    access,
    replicaTimeoutMs: 60_000,
    logger,
  });
  // Attached first, so a repair loop that takes volumes one at a time meets it first.
  await volumes.attach(await volume("stuck", "0b01", [["node-b", "down"]]));
  const healthy = await volumes.attach(await volume("healthy", "0b02", [["node-d", "down"]]));
  try {
    const data = Buffer.alloc(4096, 0x17);
    await healthy.engine.write(4096, data);
    const started = Date.now();
    const pass = volumes.repairAll();
    const deadline = started + DIAL / 2;
    while ((await states("0b02"))["node-d"] !== "in-sync") {
      assert.ok(Date.now() < deadline, `node-d's replica not in sync ${DIAL / 2} ms into the pass`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await pass;
    assert.ok(Date.now() - started < DIAL * 1.5, "the pass ends after one dial bound");
    assert.equal(await states("0b01"), { "node-a": "in-sync", "node-b": "down" });
    const resynced = await remoteD.acquire("0b02");
    try {
      assert.equal(
        await resynced.read(resynced.epoch, 4096, 4096),
        data,
        "node-d's replica holds the write by content",
      );
    } finally {
      await remoteD.release("0b02");
    }
  } finally {
    await volumes.detachAll();
  }
});

test.run();
