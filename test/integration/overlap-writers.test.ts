import { randomBytes } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DevCluster, inSync, NbdLane, type VolumeJson } from "../support/dev-cluster.js";

// Several NBD clients writing the same byte ranges at once, on a real 3-node dev cluster (127.0.75.11-13): every
// replica must apply overlapping writes in one order (each splits a write into 64 KiB pieces applied in parallel),
// so `volume check` finds them identical, and each range holds one client's write whole, never a mix of pieces.
// On one host the race is narrow: with WriteOrder disabled this passed in three runs, so the ordering itself is
// proven by test/unit/engine.test.ts ("overlapping writes in flight land in the same order on every replica").
const MiB = 1024 * 1024;
const CLIENTS = 4;
const ROUNDS = 40;
/**
 * Larger than a replica's 64 KiB piece, a multiple of no block size, and short: each write is two or three pieces,
 * so the thread pool may run two clients' pieces of one range side by side, and without ordering either lands last.
 */
const LENGTH = 70 * 1024 + 1000;
/**
 * Two runs of eight back-to-back ranges at odd offsets: neighbours share a 4 KiB block, and the first run crosses the
 * 4 MiB region boundary.
 */
const RANGES = [4 * MiB - 4 * LENGTH + 123, 40 * MiB + 777].flatMap((start) =>
  Array.from({ length: 8 }, (_, i) => start + i * LENGTH),
);

let cluster: DevCluster;

test.before(async () => {
  cluster = await DevCluster.start("127.0.75", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  await cluster?.down();
});

/**
 * One client: each round, a write of its own random bytes to every range, all in flight at once, starting at a range
 * of its own so that the clients collide on every range. Returns what it wrote last to each range.
 */
async function client(socket: string, id: number): Promise<Buffer[]> {
  const nbd = await NbdLane.open(socket, "ov");
  const last: Buffer[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = RANGES.map((_, i) => (i + id * 3 + round) % RANGES.length);
      await Promise.all(
        order.map(async (range) => {
          const payload = randomBytes(LENGTH);
          const error = await nbd.write(RANGES[range] as number, payload);
          assert.is(error, 0, `client ${id} round ${round} range ${range}`);
          last[range] = payload;
        }),
      );
      // Lets regions leave the activity log, so that later writes must log them again before they apply.
      assert.is(await nbd.flush(), 0, `client ${id} flush after round ${round}`);
    }
  } finally {
    nbd.close();
  }
  return last;
}

test("clients overwriting the same unaligned ranges at once: replicas identical, each range one write whole", async () => {
  await cluster.json(["volume", "create", "name=ov,size=64M,repl=3,nodes=node1;node2;node3"]);
  await cluster.json(["volume", "attach", "ov"], "node1");
  const socket = cluster.nbdSocket("node1", "ov");
  const written = await Promise.all(Array.from({ length: CLIENTS }, (_, id) => client(socket, id)));
  assert.equal(inSync(await cluster.json<VolumeJson>(["volume", "inspect", "ov"])), [
    "node1",
    "node2",
    "node3",
  ]);

  const nbd = await NbdLane.open(socket, "ov");
  try {
    for (const [range, offset] of RANGES.entries()) {
      const data = await nbd.read(offset, LENGTH);
      const winner = written.findIndex((last) => last[range]?.equals(data));
      assert.ok(winner >= 0, `range ${range} at ${offset} holds one client's last write whole`);
    }
  } finally {
    nbd.close();
  }
  const check = await cluster.hf(["volume", "check", "ov"]);
  assert.is(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /3 in-sync replicas \(.*\) identical/);
});

test.run();
