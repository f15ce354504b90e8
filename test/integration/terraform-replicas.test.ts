import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HOLDFAST, sh } from "../support/agent-process.js";
import { buildProvider, providerBlock, TerraformDir, volume } from "./terraform-support.js";

// Replicas 2 -> 3 with the real terraform CLI on a real 3-node dev cluster (etcd and three agents on
// 127.0.30.11-13): the update is in place, and the cluster then holds 3 replicas on 3 nodes, with the same volume id.

let dir = "";
let up: { token: string; ca: string; nodes: Array<{ id: string; api: string }> };
let tf: TerraformDir;

const inspect = async (name: string) =>
  JSON.parse(
    await sh("env", [
      `HOLDFAST_API=${up.nodes[0]?.api}`,
      `HOLDFAST_TOKEN=${up.token}`,
      `HOLDFAST_CA=${up.ca}`,
      HOLDFAST,
      "volume",
      "inspect",
      name,
      "--output",
      "json",
    ]),
  ) as { id: string; repl: number; replicas: Array<{ node: string }> };

test.before(async () => {
  await buildProvider();
  dir = join(await mkdtemp(join(tmpdir(), "hf-tfr-")), "cluster");
  up = JSON.parse(
    await sh(HOLDFAST, ["dev", "up", "--dir", dir, "--net", "127.0.30", "--nodes", "3", "--output", "json"]),
  );
  tf = await TerraformDir.create({
    HOLDFAST_API: up.nodes[0]?.api,
    HOLDFAST_TOKEN: up.token,
    HOLDFAST_CA: up.ca,
  });
});

test.after(async () => {
  await tf?.remove();
  await sh(HOLDFAST, ["dev", "down", "--dir", dir]).catch(() => undefined);
  await rm(join(dir, ".."), { recursive: true, force: true });
});

test("replicas 2 -> 3 updates in place and the cluster then holds 3 replicas", async () => {
  await tf.write({ "main.tf": providerBlock() + volume("r", { name: "tf-repl", size: "1G", replicas: 2 }) });
  await tf.apply();
  const before = await inspect("tf-repl");
  assert.is(before.repl, 2);
  assert.is(new Set(before.replicas.map((r) => r.node)).size, 2);

  await tf.write({ "main.tf": providerBlock() + volume("r", { name: "tf-repl", size: "1G", replicas: 3 }) });
  const plan = await tf.plan();
  assert.match(plan.stdout, "update in-place");
  assert.match(plan.stdout, /replicas\s+= 2 -> 3/);
  assert.match(plan.stdout, "Plan: 0 to add, 1 to change, 0 to destroy.");
  await tf.apply();
  const after = await inspect("tf-repl");
  assert.is(after.id, before.id);
  assert.is(after.repl, 3);
  assert.equal(new Set(after.replicas.map((r) => r.node)).size, 3);
  const state = await tf.ok("state", "show", "-no-color", "holdfast_volume.r");
  assert.match(state, /replica_nodes\s+= \[/);
  assert.is((await tf.plan()).code, 0, "no changes after the update");

  await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
});

test.run();
