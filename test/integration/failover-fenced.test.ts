import { open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DevCluster, inSync, type VolumeJson, waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";

// The attached node frozen (SIGSTOP: a stalled VM) on a real 3-node dev cluster (127.0.72.11-13, lease TTL 2 s),
// with a replica of its own: another node takes the volume over within the bound, and when the frozen node wakes its
// engine neither reads nor writes, not even through its local replica, which no newer engine could fence because
// the node was frozen when the takeover admitted its epoch. Only self-fencing on the lease stops it.
const LEASE_TTL_MS = 2000;
/** RemoteReplicaOptions.connectTimeoutMs's default: what dialing the frozen node1 may cost the attach. */
const DIAL_BOUND_MS = 5000;
/** Etcd noticing the expired lease, the CLI's own start-up, the open and reconcile of the other replicas. */
const MARGIN_MS = 8000;
const TAKEOVER_BOUND_MS = LEASE_TTL_MS + DIAL_BOUND_MS + MARGIN_MS;
/** How long the woken node may take to find its lease and attachment gone: a new lease, one etcd read. */
const WAKE_BOUND_MS = 30_000;
const BLOCK = 4096;

let cluster: DevCluster;
let frozen = false;

test.before(async () => {
  cluster = await DevCluster.start("127.0.72", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  if (frozen) await cluster.thaw("node1").catch(() => undefined);
  await cluster?.down();
});

/** The bytes of node1's own replica of `volumeId` at `offset`, read from its data file. */
async function localReplicaBytes(volumeId: string, offset: number): Promise<Buffer> {
  const path = join(cluster.dir, "node1", "data", "pool", "replicas", volumeId, "layers", "000000", "data");
  const file = await open(path, "r");
  try {
    const out = Buffer.alloc(BLOCK);
    await file.read(out, 0, BLOCK, offset);
    return out;
  } finally {
    await file.close();
  }
}

test("the attached node frozen: taken over within the bound; awake, it neither reads nor writes (defect 4)", async () => {
  await cluster.json(["volume", "create", "name=fz,size=64M,repl=3,nodes=node1;node2;node3"]);
  const first = await cluster.json<VolumeJson & { id: string }>(["volume", "attach", "fz"], "node1");
  const { client: old } = await RawNbdClient.open(cluster.nbdSocket("node1", "fz"), "fz");
  let cookie = 1n;
  const wrote = await old.request({
    type: NBD.CMD_WRITE,
    cookie: cookie++,
    offset: 0,
    length: BLOCK,
    payload: Buffer.alloc(BLOCK, 0x11),
  });
  assert.is(wrote.error, 0);
  assert.is((await old.request({ type: NBD.CMD_FLUSH, cookie: cookie++ })).error, 0);

  await cluster.freeze("node1");
  frozen = true;
  const frozenAt = Date.now();
  const moved = await cluster.takeOver("fz", "node2", TAKEOVER_BOUND_MS);
  assert.is(moved.attachedOn, "node2", `took ${Date.now() - frozenAt} ms`);
  assert.ok((moved.epoch ?? 0) > (first.epoch ?? 0));
  const { client: next } = await RawNbdClient.open(cluster.nbdSocket("node2", "fz"), "fz");
  const overwrite = await next.request({
    type: NBD.CMD_WRITE,
    cookie: 1n,
    offset: 0,
    length: BLOCK,
    payload: Buffer.alloc(BLOCK, 0x22),
  });
  assert.is(overwrite.error, 0);
  assert.is((await next.request({ type: NBD.CMD_FLUSH, cookie: 2n })).error, 0);

  // Queued in node1's socket while it is frozen: served, if at all, when it wakes.
  const lateWrite = cookie++;
  const staleRead = cookie++;
  old.sendRequest({
    type: NBD.CMD_WRITE,
    cookie: lateWrite,
    offset: BLOCK,
    length: BLOCK,
    payload: Buffer.alloc(BLOCK, 0x33),
  });
  old.sendRequest({ type: NBD.CMD_READ, cookie: staleRead, offset: 0, length: BLOCK });
  await cluster.thaw("node1");
  frozen = false;
  // Each request must fail, or the connection close: an answer of success would be a write by a fenced engine,
  // or a read of data older than node2's acknowledged write.
  const unanswered = new Set([lateWrite, staleRead]);
  while (unanswered.size > 0) {
    const reply = await old.readReply(WAKE_BOUND_MS).catch((err: Error) => err);
    if (reply instanceof Error) {
      assert.match(reply.message, /connection closed/, "no answer is not an answer");
      break;
    }
    assert.ok(unanswered.delete(reply.cookie), `a reply for cookie ${reply.cookie}`);
    assert.ok(reply.error !== 0, `request ${reply.cookie} of the frozen engine was answered with success`);
  }
  old.close();
  assert.not.ok(
    (await localReplicaBytes(first.id, BLOCK)).equals(Buffer.alloc(BLOCK, 0x33)),
    "node1's local replica holds nothing its old engine wrote after the takeover",
  );

  // node1 rejoins as a replica; the volume moves back to it, with node2's data, through a fresh engine there.
  await waitFor("node1 back in sync", async () => {
    const v = await cluster.json<VolumeJson>(["volume", "inspect", "fz"], "node2");
    return inSync(v).length === 3 ? v : undefined;
  });
  next.close();
  await cluster.json(["volume", "detach", "fz"], "node2");
  const back = await cluster.json<VolumeJson>(["volume", "attach", "fz"], "node1");
  assert.is(back.attachedOn, "node1");
  const { client: again } = await RawNbdClient.open(cluster.nbdSocket("node1", "fz"), "fz");
  try {
    const read = await again.request({ type: NBD.CMD_READ, cookie: 1n, offset: 0, length: 2 * BLOCK });
    assert.is(read.error, 0);
    assert.ok(read.data?.subarray(0, BLOCK).equals(Buffer.alloc(BLOCK, 0x22)), "node2's write");
    assert.ok(read.data?.subarray(BLOCK).equals(Buffer.alloc(BLOCK)), "no trace of the fenced write");
  } finally {
    again.close();
  }
  const check = await cluster.json<{ differing: number[] }>(["volume", "check", "fz"], "node1");
  assert.equal(check.differing, []);
});

test.run();
