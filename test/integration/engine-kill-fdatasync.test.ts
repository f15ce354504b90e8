import { createHash } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DevCluster, inSync, NbdLane, type VolumeJson, waitFor } from "../support/dev-cluster.js";

// The engine's node killed while several connections write and flush, three times over on a real 3-node dev cluster
// (127.0.76.11-13, lease TTL 2 s): the next node takes over once the dead node's lease expired, every write a flush
// acknowledged reads back (and every acknowledged one: the surviving replicas had it), and once the killed node
// returns and resyncs, `volume check` finds the replicas identical.
const UNIT = 32 * 1024;
const LANES = 4;
const BLOCKS_PER_LANE = 48;
/** Writes a lane sends together before its flush. */
const BATCH = 8;
/** Flushes acknowledged (over all lanes) before the engine's node is killed. */
const FLUSHES_BEFORE_KILL = 40;
const LEASE_TTL_MS = 2000;
/** The dial of the dead node, etcd noticing the expired lease, the CLI's start-up, the reconcile. */
const TAKEOVER_BOUND_MS = LEASE_TTL_MS + 5000 + 8000;
const ROTATION = ["node1", "node2", "node3"];

let cluster: DevCluster;

test.before(async () => {
  cluster = await DevCluster.start("127.0.76", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  await cluster?.down();
});

/** Spread over the volume, 1 MiB apart: lane after lane, each with blocks in many regions. */
const offsetOf = (lane: number, i: number) => (lane * BLOCKS_PER_LANE + i) * 1024 * 1024 + (lane + 1) * UNIT;

/**
 * What one block may hold: `writes[0]` is its content when the iteration began, then every write sent to it in order.
 * After a crash it may hold any write from the last one a flush covered (or the last acknowledged) onwards.
 */
interface History {
  writes: Buffer[];
  acked: number;
  flushed: number;
}

/** Writes batches to its blocks, each batch followed by a flush, until the connection dies. */
async function lane(socket: string, id: number, blocks: History[], onFlush: () => void): Promise<void> {
  const nbd = await NbdLane.open(socket, "ek");
  try {
    for (let batch = 0; ; batch++) {
      const chosen = Array.from({ length: BATCH }, (_, i) => (batch * BATCH + i) % BLOCKS_PER_LANE);
      const errors = await Promise.all(
        chosen.map(async (i) => {
          const block = blocks[i] as History;
          const payload = Buffer.alloc(UNIT, createHash("sha256").update(`${id}:${i}:${batch}`).digest());
          const index = block.writes.push(payload) - 1;
          const error = await nbd.write(offsetOf(id, i), payload);
          if (error === 0) block.acked = Math.max(block.acked, index);
          return error;
        }),
      );
      if (errors.some((e) => e !== 0)) return;
      if ((await nbd.flush()) !== 0) return;
      for (const i of chosen) {
        const block = blocks[i] as History;
        block.flushed = Math.max(block.flushed, block.acked);
      }
      onFlush();
    }
  } catch {
    // The engine's node died: its answers stop here, and `blocks` holds what it acknowledged.
  } finally {
    nbd.close();
  }
}

async function readAll(node: string): Promise<Buffer[][]> {
  const nbd = await NbdLane.open(cluster.nbdSocket(node, "ek"), "ek");
  try {
    const out: Buffer[][] = [];
    for (let id = 0; id < LANES; id++) {
      out.push([]);
      for (let i = 0; i < BLOCKS_PER_LANE; i++) out[id]?.push(await nbd.read(offsetOf(id, i), UNIT));
    }
    return out;
  } finally {
    nbd.close();
  }
}

const inspect = (node: string) => cluster.json<VolumeJson>(["volume", "inspect", "ek"], node);

test("the engine's node killed mid-run, three times: every flushed write reads back after the takeover", async () => {
  await cluster.json(["volume", "create", "name=ek,size=256M,repl=3,nodes=node1;node2;node3"]);
  let attached = await cluster.json<VolumeJson>(["volume", "attach", "ek"], "node1");
  let content = await readAll("node1");
  for (const [iteration, victim] of ROTATION.entries()) {
    const next = ROTATION[(iteration + 1) % ROTATION.length] as string;
    const histories = content.map((blocks) => blocks.map((b) => ({ writes: [b], acked: 0, flushed: 0 })));
    let flushes = 0;
    let killed: Promise<void> | undefined;
    await Promise.all(
      histories.map((blocks, id) =>
        lane(cluster.nbdSocket(victim, "ek"), id, blocks, () => {
          if (++flushes === FLUSHES_BEFORE_KILL) killed = cluster.stop(victim);
        }),
      ),
    );
    await killed;
    assert.ok(flushes >= FLUSHES_BEFORE_KILL, `iteration ${iteration}: ${flushes} flushes before the kill`);

    const moved = await cluster.takeOver("ek", next, TAKEOVER_BOUND_MS);
    assert.is(moved.attachedOn, next);
    assert.ok((moved.epoch ?? 0) > (attached.epoch ?? 0), "a higher epoch");
    attached = moved;
    content = await readAll(next);
    for (const [id, blocks] of histories.entries()) {
      for (const [i, h] of blocks.entries()) {
        const data = content[id]?.[i] as Buffer;
        const at = `iteration ${iteration}, lane ${id}, block ${i}`;
        assert.ok(
          h.writes.slice(h.flushed).some((w) => w.equals(data)),
          `${at}: a flushed write lost`,
        );
        assert.ok(
          h.writes.slice(h.acked).some((w) => w.equals(data)),
          `${at}: an acknowledged write lost`,
        );
      }
    }

    await cluster.startNode(victim);
    await waitFor(`${victim} back in sync`, async () =>
      inSync(await inspect(next)).length === 3 ? true : undefined,
    );
    const check = await cluster.json<{ replicas: string[]; differing: number[] }>(
      ["volume", "check", "ek"],
      next,
    );
    assert.equal(check.replicas.sort(), [...ROTATION]);
    assert.equal(check.differing, [], `iteration ${iteration}: replicas identical`);
  }
});

test.run();
