import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError } from "../../agent/src/replica/index.js";
import { loadIdentity, RemoteReplica } from "../../agent/src/transport/index.js";
import { ROOT, sh, stopChild } from "../support/agent-process.js";
import { DevCluster, run, waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";

// A partition, for real: node4's agent runs in its own network namespace, joined to the host by a veth pair
// (10.99.0.2 <-> 10.99.0.1, with route_localnet so it reaches etcd and the other agents on 127.0.3.x). Taking the
// host's end of the veth down cuts node4 off from etcd and every replica while its process stays alive.
const NS = "hfpart";
const HOST_END = "hfpart0";
const NS_END = "hfpart1";
const NODE4 = "10.99.0.2";
let cluster: DevCluster;
let node4: ChildProcess | undefined;

const nsExec = (...args: string[]) => sh("ip", ["netns", "exec", NS, ...args]);

async function network(up: boolean): Promise<void> {
  await sh("ip", ["link", "set", HOST_END, up ? "up" : "down"]);
}

test.before(async () => {
  await sh("ip", ["netns", "del", NS]).catch(() => undefined);
  await sh("ip", ["link", "del", HOST_END]).catch(() => undefined);
  await sh("ip", ["netns", "add", NS]);
  await sh("ip", ["link", "add", HOST_END, "type", "veth", "peer", "name", NS_END]);
  await sh("ip", ["link", "set", NS_END, "netns", NS]);
  await sh("ip", ["addr", "add", "10.99.0.1/24", "dev", HOST_END]);
  await network(true);
  await sh("sysctl", ["-qw", `net.ipv4.conf.${HOST_END}.route_localnet=1`]);
  await nsExec("ip", "addr", "add", `${NODE4}/24`, "dev", NS_END);
  await nsExec("ip", "link", "set", NS_END, "up");
  await nsExec("ip", "link", "set", "lo", "up");
  await nsExec("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1");
  await nsExec("sysctl", "-qw", `net.ipv4.conf.${NS_END}.route_localnet=1`);
  await nsExec("ip", "route", "add", "127.0.3.0/24", "via", "10.99.0.1", "dev", NS_END, "src", NODE4);

  cluster = await DevCluster.start("127.0.3", ["--nodes", "3", "--lease-ttl", "2"]);
  const dir = join(cluster.dir, "node4");
  await mkdir(join(dir, "data"), { recursive: true });
  await writeFile(join(dir, "data", "token"), `${cluster.up.token}\n`, { mode: 0o600 });
  const issued = await run([
    "cluster",
    "issue",
    "--ca-dir",
    join(cluster.dir, "ca"),
    "--node",
    "node4",
    "--address",
    NODE4,
    "--out",
    join(dir, "tls"),
  ]);
  assert.is(issued.code, 0, issued.stderr);
  node4 = spawn(
    "ip",
    [
      ...["netns", "exec", NS, process.execPath, join(ROOT, "dist/holdfast.mjs"), "agent"],
      ...["--data-dir", join(dir, "data"), "--store", "etcd://127.0.3.10:2379", "--cluster", "dev"],
      ...["--node-id", "node4", "--api", `${NODE4}:9001`, "--zone", "zone-d", "--tls-dir", join(dir, "tls")],
      ...[
        "--lease-ttl",
        "2",
        "--mount-dir",
        join(dir, "mounts"),
        "--plugin-socket",
        "none",
        "--csi-socket",
        "none",
      ],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  await waitFor("node4 to join", async () => {
    const nodes = await cluster.json<Array<{ id: string; state: string }>>(["node", "list"]);
    return nodes.find((n) => n.id === "node4" && n.state === "up");
  });
});

test.after(async () => {
  await stopChild(node4, "SIGKILL");
  await cluster?.down();
  await sh("ip", ["netns", "del", NS]).catch(() => undefined);
  await sh("ip", ["link", "del", HOST_END]).catch(() => undefined);
});

test("partition of the attached node, which holds a replica: it is fenced everywhere, writes nothing to its own replica after the takeover, the volume moves, and the replicas agree", async () => {
  const created = await cluster.json<{ id: string }>([
    "volume",
    "create",
    "name=part,size=64M,repl=3,nodes=node4;node1;node2",
  ]);
  const attach = await run(["volume", "attach", "part", "--output", "json"], {
    HOLDFAST_API: `http://${NODE4}:9001`,
    HOLDFAST_TOKEN: cluster.up.token,
  });
  assert.is(attach.code, 0, attach.stderr);
  const old = JSON.parse(attach.stdout) as { epoch: number };
  const oldSocket = join(cluster.dir, "node4", "data", "run", "nbd", "part.sock");
  const { client: oldClient } = await RawNbdClient.open(oldSocket, "part");
  const before = Buffer.alloc(4096, 1);
  const w1 = await oldClient.request({
    type: NBD.CMD_WRITE,
    cookie: 1n,
    offset: 0,
    length: 4096,
    payload: before,
  });
  assert.is(w1.error, 0, "writes work before the partition");

  await network(false);
  // A write sent now cannot be acknowledged: no remote replica answers, and the store is out of reach to drop them.
  // It may reach node4's own replica, which the new engine then does not count as in sync.
  oldClient.sendRequest({
    type: NBD.CMD_WRITE,
    cookie: 2n,
    offset: 4096,
    length: 4096,
    payload: Buffer.alloc(4096, 2),
  });
  const replies = new Map<bigint, number>();
  const answered = (async () => {
    for (let i = 0; i < 2; i++) {
      const reply = await oldClient.readReply(180_000);
      replies.set(reply.cookie, reply.error);
    }
  })();

  const moved = await waitFor("node2 to take over from the cut-off node4", async () => {
    const r = await cluster.hf(["volume", "attach", "part", "--output", "json"], "node2");
    return r.code === 0 ? (JSON.parse(r.stdout) as { epoch: number; attachedOn: string }) : undefined;
  });
  assert.is(moved.attachedOn, "node2");
  assert.ok(moved.epoch > old.epoch);
  assert.is(replies.size, 0, "the cut-off engine acknowledged nothing meanwhile");
  // After the takeover, the cut-off engine gets a write it must neither acknowledge nor put on node4's replica:
  // node4's lease has run out, and no other node can tell its replica of the new epoch.
  const afterTakeover = Buffer.alloc(4096, 7);
  oldClient.sendRequest({
    type: NBD.CMD_WRITE,
    cookie: 3n,
    offset: 8192,
    length: 4096,
    payload: afterTakeover,
  });
  const { client: newClient } = await RawNbdClient.open(cluster.nbdSocket("node2", "part"), "part");
  const after = Buffer.alloc(4096, 3);
  const w3 = await newClient.request({
    type: NBD.CMD_WRITE,
    cookie: 3n,
    offset: 4096,
    length: 4096,
    payload: after,
  });
  assert.is(w3.error, 0);
  newClient.close();

  // Every replica the new engine reaches refuses the old epoch, asked directly with node4's own certificate.
  const identity = await loadIdentity(join(cluster.dir, "node4", "tls"));
  for (const [i, node] of ["node1", "node2"].entries()) {
    const remote = await RemoteReplica.connect({
      identity,
      nodeId: node,
      host: `127.0.3.${11 + i}`,
      port: 9002,
      volumeId: created.id,
    });
    try {
      await remote.admit(old.epoch).then(
        () => assert.unreachable(`${node} admitted the old epoch`),
        (err) => assert.instance(err, FencedError),
      );
    } finally {
      remote.close();
    }
  }

  // Detached, no engine resyncs node4's replica once the network is back: what it holds then is the old engine's.
  await cluster.json(["volume", "detach", "part"], "node2");
  await network(true);
  await answered;
  assert.ok((replies.get(2n) ?? 0) !== 0, "the write held during the partition fails, never succeeds");
  assert.ok((replies.get(3n) ?? 0) !== 0, "the write sent after the takeover fails");
  const read = await oldClient
    .request({ type: NBD.CMD_READ, cookie: 4n, offset: 0, length: 4096 })
    .catch(() => ({ error: -1 }));
  assert.ok(read.error !== 0, "the old engine no longer serves reads");
  oldClient.close();
  const local = join(
    cluster.dir,
    "node4",
    "data",
    "pool",
    "replicas",
    created.id,
    "layers",
    "000000",
    "data",
  );
  const file = await open(local, "r");
  try {
    const held = Buffer.alloc(4096);
    await file.read(held, 0, 4096, 8192);
    assert.equal(held, Buffer.alloc(4096), "node4's replica holds nothing written after the takeover");
  } finally {
    await file.close();
  }

  // Attached again, node4's replica is brought back by a compare of every region and matches the others.
  await cluster.json(["volume", "attach", "part"], "node2");
  await waitFor("node4's replica in sync again", async () => {
    const v = await cluster.json<{ replicas: Array<{ node: string; state: string }> }>([
      "volume",
      "inspect",
      "part",
    ]);
    return v.replicas.every((r) => r.state === "in-sync") ? true : undefined;
  });
  const { client: reader } = await RawNbdClient.open(cluster.nbdSocket("node2", "part"), "part");
  const r0 = await reader.request({ type: NBD.CMD_READ, cookie: 5n, offset: 0, length: 12288 });
  reader.close();
  assert.ok(
    r0.data?.subarray(0, 4096).equals(before),
    "the write acknowledged before the partition is there",
  );
  assert.ok(
    r0.data?.subarray(4096, 8192).equals(after),
    "the new engine's write is there, not the cut-off one's",
  );
  assert.ok(r0.data?.subarray(8192).equals(Buffer.alloc(4096)), "and nothing the cut-off engine was sent");
  const result = await cluster.json<{ differing: number[]; replicas: string[] }>(["volume", "check", "part"]);
  assert.equal(result.replicas.sort(), ["node1", "node2", "node4"]);
  assert.equal(result.differing, []);
});

test.run();
