import { test } from "uvu";
import * as assert from "uvu/assert";
import { sh } from "../support/agent-process.js";
import { DevCluster, inSync, type VolumeJson, waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";

// Failover past a frozen replica node, on a real 3-node dev cluster (127.0.70.11-13, lease TTL 2 s): node2's agent
// is stopped with SIGSTOP (a stalled VM: its kernel accepts the replication connection and never answers), then
// the attached node1 is killed. node3 must take over within the bound, with node2 out of the in-sync set.
const MiB = 1024 * 1024;
const LEASE_TTL_MS = 2000;
/** RemoteReplicaOptions.connectTimeoutMs's default: what dialing the frozen node2 may cost the attach. */
const DIAL_BOUND_MS = 5000;
/** Etcd noticing the expired lease, the CLI's own start-up, the local replica's open and reconcile. */
const MARGIN_MS = 8000;
const TAKEOVER_BOUND_MS = LEASE_TTL_MS + DIAL_BOUND_MS + MARGIN_MS;
let cluster: DevCluster;
let frozen = false;

const patterns = [
  { offset: 0, length: 4 * MiB, byte: 0x5a },
  { offset: 9 * MiB, length: MiB, byte: 0xa5 },
  { offset: 40 * MiB + 4096, length: 64 * 1024, byte: 0x3c },
];

test.before(async () => {
  cluster = await DevCluster.start("127.0.70", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  if (frozen) await cluster.thaw("node2").catch(() => undefined);
  await cluster?.down();
});

test("node2 frozen, then node1 killed: node3 takes over within the bound, without node2, and node2 resyncs when thawed", async () => {
  await cluster.json(["volume", "create", "name=frz,size=64M,repl=3,nodes=node1;node2;node3"]);
  const attached = await cluster.json<VolumeJson>(["volume", "attach", "frz"], "node1");
  const uri = `nbd+unix:///frz?socket=${cluster.nbdSocket("node1", "frz")}`;
  await sh("qemu-io", [
    "-f",
    "raw",
    ...patterns.flatMap((p) => ["-c", `write -P ${p.byte} ${p.offset} ${p.length}`]),
    "-c",
    "flush",
    uri,
  ]);
  assert.equal(inSync(await cluster.json<VolumeJson>(["volume", "inspect", "frz"])), [
    "node1",
    "node2",
    "node3",
  ]);

  await cluster.freeze("node2");
  frozen = true;
  await cluster.stop("node1");
  const killedAt = Date.now();
  const moved = await cluster.takeOver("frz", "node3", TAKEOVER_BOUND_MS);
  const took = Date.now() - killedAt;
  assert.is(moved.attachedOn, "node3");
  assert.ok((moved.epoch ?? 0) > (attached.epoch ?? 0), "a higher epoch");
  const after = await cluster.json<VolumeJson>(["volume", "inspect", "frz"], "node3");
  assert.equal(inSync(after), ["node3"], `took ${took} ms; node1 (killed) and node2 (frozen) are out`);
  assert.is(after.replicas.find((r) => r.node === "node2")?.state, "down", "node2 dropped in etcd");

  const { client } = await RawNbdClient.open(cluster.nbdSocket("node3", "frz"), "frz");
  try {
    let cookie = 1n;
    for (const p of patterns) {
      const r = await client.request({
        type: NBD.CMD_READ,
        cookie: cookie++,
        offset: p.offset,
        length: p.length,
      });
      assert.is(r.error, 0);
      assert.ok(r.data?.equals(Buffer.alloc(p.length, p.byte)), `${p.length} bytes at ${p.offset} read back`);
    }
  } finally {
    client.close();
  }

  await cluster.thaw("node2");
  frozen = false;
  const healed = await waitFor("node2 back in sync after SIGCONT", async () => {
    const v = await cluster.json<VolumeJson>(["volume", "inspect", "frz"], "node3");
    return inSync(v).includes("node2") ? v : undefined;
  });
  assert.equal(inSync(healed), ["node2", "node3"]);
  const check = await cluster.json<{ replicas: string[]; differing: number[] }>(
    ["volume", "check", "frz"],
    "node3",
  );
  assert.equal(check.replicas.sort(), ["node2", "node3"]);
  assert.equal(check.differing, []);
});

test.run();
