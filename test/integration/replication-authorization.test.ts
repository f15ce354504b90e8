import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { connect } from "node:tls";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ForbiddenError } from "../../agent/src/errors.js";
import {
  clientTlsOptions,
  loadIdentity,
  type NodeIdentity,
  RemoteReplica,
} from "../../agent/src/transport/index.js";
import { encodeRequest, FrameReader, Op, Status } from "../../agent/src/transport/wire.js";
import { DevCluster, inSync, NbdLane, type VolumeJson } from "../support/dev-cluster.js";

// Authorization on the replication port, against real agents on 127.0.5.x: a volume is attached on node1 with
// replicas on all three nodes; a client holding node3's own certificate (authenticated: it is a cluster member) asks
// node2's replication port to act on node2's replica. Only node1 may; the agent refuses, lives, and node1's engine
// keeps its replicas in sync.
let cluster: DevCluster;
let node3: NodeIdentity;
let volumeId = "";
let epoch = 0;

test.before(async () => {
  cluster = await DevCluster.start("127.0.5", ["--nodes", "3"]);
  node3 = await loadIdentity(join(cluster.dir, "node3", "data", "tls"));
  volumeId = (await cluster.json<{ id: string }>(["volume", "create", "name=authz,size=64M,repl=3"])).id;
  epoch = (await cluster.json<{ epoch: number }>(["volume", "attach", "authz"], "node1")).epoch;
});
test.after(async () => {
  await cluster?.down();
});

const node2 = { nodeId: "node2", host: "127.0.5.12", port: 9002 };

/** A connection to node2's replica of the volume, as node3. */
const asNode3 = () => RemoteReplica.connect({ identity: node3, ...node2, volumeId });

async function forbidden(promise: Promise<unknown>, reason: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, ForbiddenError, `expected refusal (${reason}), got ${String(err)}`);
  assert.match((err as Error).message, reason);
}

/** node1's engine writes and reads back through NBD, and every replica is in sync and identical. */
async function engineUnharmed(at: number): Promise<void> {
  const lane = await NbdLane.open(cluster.nbdSocket("node1", "authz"), "authz");
  try {
    const data = randomBytes(64 * 1024);
    assert.is(await lane.write(at, data), 0, "node1's engine still writes");
    assert.is(await lane.flush(), 0);
    assert.ok((await lane.read(at, data.length)).equals(data), "and reads back what it wrote");
  } finally {
    lane.close();
  }
  const v = await cluster.json<VolumeJson>(["volume", "inspect", "authz"]);
  assert.equal(inSync(v), ["node1", "node2", "node3"], "no replica was dropped");
  assert.is(v.epoch, epoch, "the attachment is node1's, at the same epoch");
  const check = await cluster.hf(["volume", "check", "authz"], "node1");
  assert.is(check.code, 0, check.stdout + check.stderr);
}

test("node3 cannot admit node1's epoch, a higher one, write, create or destroy on node2's replica of node1's volume", async () => {
  const remote = await asNode3();
  try {
    await forbidden(remote.write(0, Buffer.alloc(4096, 0xee)), "admit an epoch on this connection first");
    await forbidden(
      remote.admit(epoch),
      `node3 may not admit epoch ${epoch} for volume ${volumeId}: node1 holds it`,
    );
    // Before authorization, this fenced node1's engine for good: every later attach had to exceed 2^40.
    await forbidden(remote.admit(2 ** 40), "node3 may not admit epoch");
    // The admit failed, so the connection still carries no epoch it may use.
    await forbidden(remote.write(0, Buffer.alloc(4096, 0xee)), "admit an epoch on this connection first");
    await forbidden(remote.regionChecksum(0), "admit an epoch on this connection first");
  } finally {
    remote.close();
  }
  await forbidden(
    RemoteReplica.destroy({ identity: node3, ...node2, volumeId }),
    'may not destroy node2\'s replica of volume "authz": the volume lists it',
  );
  await forbidden(
    RemoteReplica.create({ identity: node3, ...node2, volumeId }, { size: 64 << 20, blockSize: 4096 }),
    "only its attached node may",
  );
  await engineUnharmed(0);
});

test("a huge read count and a flood of pipelined writes: refused, and the agent and node1's engine carry on", async () => {
  const remote = await asNode3();
  try {
    const huge = await remote.read(0, 0xffffffff).then(
      () => "answered",
      (e: Error) => e.message,
    );
    assert.match(huge, "a read of 4294967295 bytes exceeds");
  } finally {
    remote.close();
  }

  // 4096 writes of 256 KiB (1 GiB) sent as fast as TLS takes them, at node1's epoch, answers left unread until the
  // end: each is refused (this connection admitted nothing), none lands, and the agent is not swamped.
  const socket = connect({ ...node2, ...clientTlsOptions(node3, "node2") });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  const frames = new FrameReader();
  let answers = 0;
  const statuses = new Map<number, number>();
  socket.on("data", (chunk: Buffer) => {
    for (const frame of frames.push(chunk)) {
      answers++;
      statuses.set(frame.readUInt8(0), (statuses.get(frame.readUInt8(0)) ?? 0) + 1);
    }
  });
  socket.pause();
  const open = Buffer.from(JSON.stringify({ volumeId }));
  for (const part of encodeRequest({ op: Op.Open, id: 1, epoch: 0, offset: 0, count: 0 }, open))
    socket.write(part);
  const payload = Buffer.alloc(256 * 1024, 0xee);
  const FLOOD = 4096;
  for (let i = 0; i < FLOOD; i++) {
    const parts = encodeRequest(
      { op: Op.Write, id: 2 + i, epoch, offset: 0, count: payload.length },
      payload,
    );
    for (const part of parts) {
      if (!socket.write(part)) await new Promise((resolve) => socket.once("drain", resolve));
    }
  }
  socket.resume();
  while (answers < FLOOD + 1) await new Promise((resolve) => socket.once("data", resolve));
  socket.destroy();
  assert.is(statuses.get(Status.Forbidden), FLOOD, "every write refused as forbidden");

  // A flooded write that landed would make node2's first region differ from the others': the check compares it.
  await engineUnharmed(8 << 20);
});

test.run();
