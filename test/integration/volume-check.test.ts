import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { apiOverTls, sh } from "../support/agent-process.js";
import { DevCluster, waitFor } from "../support/dev-cluster.js";

// `volume check` on a real 3-node dev cluster (127.0.60.x): replicas written alike through NBD are identical, and
// after one replica's bytes are changed on its node's disk, the CLI exits 1 naming the region and the API says so.
const MiB = 1024 * 1024;
/** The unit `volume check` compares (the replica's REGION_SIZE). */
const REGION = 4 * MiB;
let cluster: DevCluster;
let volumeId = "";

interface CheckJson {
  name: string;
  replicas: string[];
  regions: number;
  identical: boolean;
  differing: number[];
}

/** POST /v1/volumes/NAME/check on node1's agent, as the CLI and the provider call it. */
async function checkByApi(name: string): Promise<CheckJson> {
  const api = cluster.up.nodes[0]?.api;
  const res = await apiOverTls(`${api}/v1/volumes/${name}/check`, {
    method: "POST",
    token: cluster.up.token,
    ca: await readFile(cluster.up.ca, "utf8"),
  });
  assert.is(res.status, 200, JSON.stringify(res.body));
  return res.body as CheckJson;
}

test.before(async () => {
  cluster = await DevCluster.start("127.0.60", ["--nodes", "3", "--lease-ttl", "10"]);
  volumeId = (await cluster.json<{ id: string }>(["volume", "create", "name=chk,size=64M,repl=3"])).id;
  const { nbd } = await cluster.json<{ nbd: string }>(["volume", "attach", "chk"], "node1");
  await sh("qemu-io", ["-f", "raw", "-c", "write -P 0xab 0 1M", "-c", `write -P 0xcd ${2 * REGION} 1M`, nbd]);
  await cluster.json(["volume", "detach", "chk"], "node1");
});
test.after(async () => {
  await cluster?.down();
});

test("replicas written alike: check exits 0 and says identical, in text, JSON and the API", async () => {
  const text = await cluster.hf(["volume", "check", "chk"]);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /chk: 3 in-sync replicas \(.*\) identical over 16 regions/);
  const json = await cluster.json<CheckJson>(["volume", "check", "chk"]);
  assert.is(json.identical, true);
  assert.equal(json.differing, []);
  assert.equal(json.replicas.sort(), ["node1", "node2", "node3"]);
  const api = await checkByApi("chk");
  assert.is(api.identical, true);
  assert.equal(api.differing, []);
});

test("a replica changed on disk: check exits 1 naming the region; JSON and the API carry identical: false", async () => {
  await cluster.stop("node3", "SIGTERM");
  const data = join(cluster.dir, "node3", "data", "pool", "replicas", volumeId, "layers", "000000", "data");
  const file = await open(data, "r+");
  try {
    // Inside the 0xcd block written above, so the cluster is allocated in node3's map as on the others.
    await file.write(Buffer.alloc(512, 0x5a), 0, 512, 2 * REGION + 4096);
    await file.sync();
  } finally {
    await file.close();
  }
  await cluster.startNode("node3");
  await waitFor("node3 up again", async () => {
    const nodes = await cluster.json<Array<{ id: string; state: string }>>(["node", "list"]);
    return nodes.find((n) => n.id === "node3")?.state === "up" ? true : undefined;
  });

  const text = await cluster.hf(["volume", "check", "chk"]);
  assert.is(text.code, 1, `exit code of a check that found a difference: ${text.stdout}${text.stderr}`);
  assert.match(text.stdout, /chk: replicas differ in 1 of 16 regions: 2\b/);
  assert.match(text.stderr, /holdfast: the in-sync replicas of chk differ in 1 region/);

  const json = await cluster.hf(["volume", "check", "chk", "--output", "json"]);
  assert.is(json.code, 1, json.stderr);
  const result = JSON.parse(json.stdout) as CheckJson;
  assert.is(result.identical, false);
  assert.equal(result.differing, [2]);

  const api = await checkByApi("chk");
  assert.is(api.identical, false);
  assert.equal(api.differing, [2]);
});

test("an idle attached volume whose replica's node is killed: the replica leaves the in-sync set on the broken connection, resyncs when back, and check then succeeds (defect 12)", async () => {
  await cluster.json(["volume", "create", "name=idle,size=16M,repl=3"]);
  const { nbd } = await cluster.json<{ nbd: string }>(["volume", "attach", "idle"], "node1");
  await sh("qemu-io", ["-f", "raw", "-c", "write -P 0x3c 0 1M", "-c", "flush", nbd]);
  const replicaOf = async (node: string) =>
    (
      await cluster.json<{ replicas: Array<{ node: string; state: string }> }>(["volume", "inspect", "idle"])
    ).replicas.find((r) => r.node === node)?.state;
  const drops = async () =>
    (await cluster.agentLog("node1"))
      .split("\n")
      .filter((line) => line.includes("replica failed: leaving the in-sync set") && line.includes("node2"));

  // Killed and restarted well within its 10 s lease, as a service manager restarts a crashed agent: node2 never
  // shows down, and nothing is written. Only the broken connection can tell node1's engine.
  await cluster.stop("node2");
  await cluster.startNode("node2");
  const [drop] = await waitFor("node2's replica to leave the in-sync set", async () => {
    const found = await drops();
    return found.length > 0 ? found : undefined;
  });
  assert.not.match(drop ?? "", /is down/, "dropped for its connection, not for its node's lease");
  await waitFor("node2's replica in sync again", async () =>
    (await replicaOf("node2")) === "in-sync" ? true : undefined,
  );
  const check = await cluster.hf(["volume", "check", "idle"], "node1");
  assert.is(check.code, 0, `${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /3 in-sync replicas .* identical/);
  await cluster.json(["volume", "detach", "idle"], "node1");
});

test.run();
