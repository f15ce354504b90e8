import { createHash } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DevCluster, inSync, NbdLane, type VolumeJson, waitFor } from "../support/dev-cluster.js";

// A replica frozen under pipelined writes, then killed and restarted, catches up incrementally while the writes go
// on, and then serves every acknowledged write alone: on a real 3-node dev cluster (127.0.74.11-13, lease TTL 2 s),
// node3 is stopped with SIGSTOP while writes to 16 far-apart regions are in flight, dropped after the liveness
// bound, SIGKILLed and started again; once it is in sync, node1 and node2 are killed and node3 attaches the volume.
const MiB = 1024 * 1024;
/** The unit of resync and of `volume check` (the replica's REGION_SIZE). */
const REGION = 4 * MiB;
const VOLUME_REGIONS = 32;
/** Every other region: the regions never written must stay out of an incremental resync. */
const WRITTEN_REGIONS = Array.from({ length: 16 }, (_, i) => 2 * i);
const UNIT = 16 * 1024;
const SLOTS_PER_REGION = 16;
const LANES = 4;
/** Writes in flight per connection. */
const DEPTH = 4;
/** Writes acknowledged between the steps, so that each step happens with writes in flight. */
const STEP = 200;

let cluster: DevCluster;
let frozen = false;

test.before(async () => {
  cluster = await DevCluster.start("127.0.74", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  if (frozen) await cluster.thaw("node3").catch(() => undefined);
  await cluster?.down();
});

/** The byte offsets lane `lane` writes: its share of the written regions, spread over each region. */
function offsetsOf(lane: number): number[] {
  return WRITTEN_REGIONS.filter((_, i) => i % LANES === lane).flatMap((region) =>
    Array.from(
      { length: SLOTS_PER_REGION },
      (_, slot) => region * REGION + slot * (REGION / SLOTS_PER_REGION),
    ),
  );
}

function pattern(offset: number, generation: number): Buffer {
  return Buffer.alloc(UNIT, createHash("sha256").update(`${offset}:${generation}`).digest());
}

/** Pipelined writers: each offset is written by one worker, in turn, so its last acknowledged write is its content. */
class Writers {
  readonly acked = new Map<number, Buffer>();
  ackedCount = 0;
  private stopping = false;
  private readonly lanes: NbdLane[] = [];
  private readonly done: Promise<void>[] = [];

  async start(socket: string, volume: string): Promise<void> {
    for (let lane = 0; lane < LANES; lane++) {
      const nbd = await NbdLane.open(socket, volume);
      this.lanes.push(nbd);
      const offsets = offsetsOf(lane);
      for (let worker = 0; worker < DEPTH; worker++)
        this.done.push(
          this.work(
            nbd,
            offsets.filter((_, i) => i % DEPTH === worker),
          ),
        );
    }
  }

  private async work(nbd: NbdLane, offsets: number[]): Promise<void> {
    for (let generation = 0; !this.stopping; generation++) {
      for (const offset of offsets) {
        const payload = pattern(offset, generation);
        const error = await nbd.write(offset, payload);
        if (error !== 0) throw new Error(`write at ${offset} failed with NBD error ${error}`);
        this.acked.set(offset, payload);
        this.ackedCount++;
        if (this.stopping) return;
      }
    }
  }

  /** Resolves once `n` more writes have been acknowledged (or rejects with a writer's failure). */
  async progress(n: number, what: string): Promise<void> {
    const target = this.ackedCount + n;
    const failed = Promise.all(this.done).then(() => undefined);
    await Promise.race([failed, waitFor(what, async () => (this.ackedCount >= target ? true : undefined))]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.done);
    for (const nbd of this.lanes) nbd.close();
  }
}

const inspect = (node: string) => cluster.json<VolumeJson>(["volume", "inspect", "rf"], node);

test("a replica frozen under writes, killed and restarted, resyncs incrementally and alone serves every acknowledged write", async () => {
  await cluster.json([
    "volume",
    "create",
    `name=rf,size=${(VOLUME_REGIONS * REGION) / MiB}M,repl=3,nodes=node1;node2;node3`,
  ]);
  await cluster.json(["volume", "attach", "rf"], "node1");
  const writers = new Writers();
  await writers.start(cluster.nbdSocket("node1", "rf"), "rf");
  try {
    await writers.progress(STEP, "writes before the freeze");
    await cluster.freeze("node3");
    frozen = true;
    const dropped = await waitFor("node3 dropped from the in-sync set", async () => {
      const v = await inspect("node1");
      return inSync(v).includes("node3") ? undefined : v;
    });
    assert.equal(inSync(dropped), ["node1", "node2"]);
    await writers.progress(STEP, "writes once node3 is dropped");
    await cluster.stop("node3");
    frozen = false;
    await writers.progress(STEP, "writes while node3 is down");
    await cluster.startNode("node3");
    await waitFor("node3 back in sync", async () =>
      inSync(await inspect("node1")).length === 3 ? true : undefined,
    );
    await writers.progress(STEP, "writes after the resync");
  } finally {
    await writers.stop();
  }

  const resynced = (await cluster.agentLog("node1"))
    .split("\n")
    .filter((line) => line.includes('"node":"node3"') && line.includes("replica resynced"))
    .map((line) => JSON.parse(line) as { plan: string; regions: number });
  assert.is(resynced.length, 1, "one resync of node3");
  assert.is(resynced[0]?.plan, "incremental");
  assert.ok(
    (resynced[0]?.regions ?? Number.POSITIVE_INFINITY) <= WRITTEN_REGIONS.length,
    `${resynced[0]?.regions} regions copied or compared: only written ones, of ${VOLUME_REGIONS}`,
  );
  const check = await cluster.json<{ replicas: string[]; differing: number[] }>(
    ["volume", "check", "rf"],
    "node1",
  );
  assert.equal(check.replicas.sort(), ["node1", "node2", "node3"]);
  assert.equal(check.differing, []);

  // node3 alone: the others die with the volume detached, and node3's engine drops their unreachable replicas.
  await cluster.json(["volume", "detach", "rf"], "node1");
  await cluster.stop("node1");
  await cluster.stop("node2");
  const alone = await cluster.takeOver("rf", "node3", 30_000);
  assert.is(alone.attachedOn, "node3");
  assert.equal(inSync(await inspect("node3")), ["node3"], "node3 is the only in-sync replica");
  const nbd = await NbdLane.open(cluster.nbdSocket("node3", "rf"), "rf");
  try {
    assert.is(writers.acked.size, WRITTEN_REGIONS.length * SLOTS_PER_REGION, "every offset was written");
    for (const [offset, expected] of writers.acked)
      assert.ok((await nbd.read(offset, UNIT)).equals(expected), `the last acknowledged write at ${offset}`);
    assert.ok(
      (await nbd.read(REGION, UNIT)).equals(Buffer.alloc(UNIT)),
      "an unwritten region reads as zeros",
    );
  } finally {
    nbd.close();
  }
});

test.run();
