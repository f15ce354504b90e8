import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { sh } from "../support/agent-process.js";
import { run as hf, waitFor } from "../support/dev-cluster.js";

// `holdfast dev up|stop|start|down` as a user runs it: a real etcd and three real agents on 127.0.0.11-13.
let dir = "";
let up: {
  etcd: string;
  token: string;
  ca: string;
  nodes: Array<{ id: string; api: string; pid: number; zone: string }>;
};

test.before(async () => {
  dir = join(await mkdtemp(join(tmpdir(), "hf-dev-")), "cluster");
});
test.after(async () => {
  await hf(["dev", "down", "--dir", dir]);
});

test("dev up starts etcd and three agents on their own addresses and zones, and prints them as JSON", async () => {
  const r = await hf(["dev", "up", "--dir", dir, "--nodes", "3", "--lease-ttl", "2", "--output", "json"]);
  assert.is(r.code, 0, r.stderr);
  up = JSON.parse(r.stdout);
  assert.match(up.etcd, /^https:\/\/127\.0\.0\.10:2379$/, "etcd is served over TLS");
  assert.equal(
    up.nodes.map((n) => [n.id, n.api, n.zone]),
    [
      ["node1", "https://127.0.0.11:9001", "zone-a"],
      ["node2", "https://127.0.0.12:9001", "zone-b"],
      ["node3", "https://127.0.0.13:9001", "zone-c"],
    ],
  );
  const env = { HOLDFAST_API: up.nodes[1]?.api, HOLDFAST_TOKEN: up.token, HOLDFAST_CA: up.ca };
  const nodes = JSON.parse((await hf(["node", "list", "--output", "json"], env)).stdout) as Array<{
    state: string;
  }>;
  assert.equal(
    nodes.map((n) => n.state),
    ["up", "up", "up"],
  );
});

test("dev stop --signal SIGKILL and dev start: the node goes down and comes back with its data", async () => {
  const env = { HOLDFAST_API: up.nodes[2]?.api, HOLDFAST_TOKEN: up.token, HOLDFAST_CA: up.ca };
  assert.is((await hf(["volume", "create", "name=devvol,size=64M"], env)).code, 0);
  assert.is((await hf(["dev", "stop", "--dir", dir, "--node", "node3", "--signal", "SIGKILL"])).code, 0);
  const first = { HOLDFAST_API: up.nodes[0]?.api, HOLDFAST_TOKEN: up.token, HOLDFAST_CA: up.ca };
  await waitFor("node3 to count as down", async () => {
    const nodes = JSON.parse((await hf(["node", "list", "--output", "json"], first)).stdout) as Array<{
      id: string;
      state: string;
    }>;
    return nodes.find((n) => n.id === "node3")?.state === "down" ? true : undefined;
  });
  assert.is((await hf(["dev", "start", "--dir", dir, "--node", "node3"])).code, 0);
  const v = JSON.parse((await hf(["volume", "inspect", "devvol", "--output", "json"], env)).stdout);
  assert.is(v.name, "devvol");
});

test("bad input: an unknown node and a second dev up get clear errors", async () => {
  const unknown = await hf(["dev", "stop", "--dir", dir, "--node", "node9"]);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /no node "node9" in this dev cluster/);
  const twice = await hf(["dev", "up", "--dir", dir]);
  assert.is(twice.code, 1);
  assert.match(twice.stderr, /already running/);
  const nowhere = await hf(["dev", "down", "--dir", join(dir, "nothing")]);
  assert.is(nowhere.code, 2);
});

test("dev down stops every process and removes the directory", async () => {
  assert.is((await hf(["dev", "down", "--dir", dir])).code, 0);
  for (const pid of up.nodes.map((n) => n.pid)) {
    assert.throws(() => process.kill(pid, 0), "agent process gone");
  }
  const left = await sh("sh", ["-c", `ls ${dir} 2>/dev/null | wc -l`]);
  assert.is(left.trim(), "0");
});

test.run();
