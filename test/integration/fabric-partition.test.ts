import { open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError } from "../../agent/src/contracts/index.js";
import { loadIdentity, RemoteReplica } from "../../agent/src/transport/index.js";
import { DevCluster, waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";
import { NetnsNode } from "../support/netns-node.js";

// A partition, for real: node4's agent runs in its own network namespace (NetnsNode), joined to the host by a veth
// pair; taking the host's end down cuts node4 off from etcd and every replica while its process stays alive.
let cluster: DevCluster;
let node4: NetnsNode;

test.before(async () => {
  cluster = await DevCluster.start("127.0.3", ["--nodes", "3", "--lease-ttl", "2"]);
  node4 = await NetnsNode.join(cluster, { id: "node4", index: 4, zone: "zone-d" });
  cluster.adopt(node4);
});

test.after(async () => {
  await cluster?.down();
});

test("partition of the attached node, which holds a replica: it is fenced everywhere, writes nothing to its own replica after the takeover, the volume moves, and the replicas agree", async () => {
  const created = await cluster.json<{ id: string }>([
    "volume",
    "create",
    "name=part,size=64M,repl=3,nodes=node4;node1;node2",
  ]);
  const attach = await cluster.hf(["volume", "attach", "part", "--output", "json"], "node4");
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

  await node4.partition();
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
  // Replies by cookie; a connection the fenced engine closes answers what is left with an error (-1).
  const answered = (async () => {
    for (let i = 0; i < 2; i++) {
      const reply = await oldClient.readReply(180_000).catch(() => undefined);
      if (!reply) break;
      replies.set(reply.cookie, reply.error);
    }
    for (const cookie of [2n, 3n]) if (!replies.has(cookie)) replies.set(cookie, -1);
  })();

  const moved = await waitFor("node2 to take over from the cut-off node4", async () => {
    const r = await cluster.hf(["volume", "attach", "part", "--output", "json"], "node2");
    return r.code === 0 ? (JSON.parse(r.stdout) as { epoch: number; attachedOn: string }) : undefined;
  });
  assert.is(moved.attachedOn, "node2");
  assert.ok(moved.epoch > old.epoch);
  assert.not.ok([...replies.values()].includes(0), "the cut-off engine acknowledged nothing meanwhile");
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
  const identity = await loadIdentity(join(node4.dir, "data", "tls"));
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
  await node4.heal();
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
