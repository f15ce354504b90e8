import { readFile } from "node:fs/promises";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { VOLUME_KEYS, type VolumeKey } from "../../agent/src/volume-spec/index.js";
import { apiOverTls } from "../support/agent-process.js";
import { DevCluster, type VolumeJson, waitFor } from "../support/dev-cluster.js";
import { buildProvider, providerBlock, TerraformDir, volume } from "./terraform-support.js";

// Every row of the key table, through the real API, the real CLI and the real terraform CLI on a 3-node dev
// cluster (etcd and three agents on 127.0.30.11-13, so repl can grow): an `online` key changes in place, a
// `replace` key is refused by the API and planned as a replacement by Terraform, the `fixed` one is refused by
// both, and a `planned` key is refused by all three, naming what it waits for. The test reads only the table's
// rows, so a new key is walked with no edit here.

let cluster: DevCluster;
let ca = "";
let tf: TerraformDir;

const supported = VOLUME_KEYS.filter((k) => k.status === "supported" && k.name !== "name");
const planned = VOLUME_KEYS.filter((k) => k.status !== "supported");
const online = supported.filter((k) => k.mutability === "online");
const notOnline = supported.filter((k) => k.mutability !== "online");

/** A valid value other than the key's default, as JSON: what the walk changes each key to. */
function changed(key: VolumeKey): unknown {
  const { kind } = key;
  switch (kind.type) {
    case "enum":
      return kind.values?.find((v) => v !== key.default);
    case "int":
    case "size":
      return (key.default as number) * 2;
    case "bool":
      return !key.default;
    case "list":
      return ["walk"];
    case "map":
      return { walk: "yes" };
    case "schedule":
      return [{ kind: "daily", hour: 2, minute: 0, keep: 7 }];
    default:
      return "walk-other";
  }
}

/** The same value in the spec grammar, as a CLI flag or an inline spec gives it. */
const asText = (key: VolumeKey) => (key.kind.format as (v: unknown) => string)(changed(key));

/** The same value as HCL. */
function asHcl(key: VolumeKey): string {
  const value = changed(key);
  if (key.kind.type === "size" || key.kind.type === "schedule") return JSON.stringify(asText(key));
  if (key.kind.type === "map")
    return `{ ${Object.entries(value as Record<string, string>)
      .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
      .join(", ")} }`;
  return JSON.stringify(value);
}

const attribute = (key: VolumeKey) => key.terraform ?? key.name;

const api = (method: string, path: string, body?: unknown) =>
  apiOverTls(`${cluster.up.nodes[0]?.api}${path}`, { ca, token: cluster.up.token, method, body }) as Promise<{
    status: number;
    body: Record<string, unknown> & { error?: { code: string; field?: string; message: string } };
  }>;

const inspect = (name: string) =>
  cluster.json<VolumeJson & Record<string, unknown>>(["volume", "inspect", name]);

test.before(async () => {
  await buildProvider();
  cluster = await DevCluster.start("127.0.30", ["--nodes", "3"]);
  ca = await readFile(cluster.up.ca, "utf8");
  tf = await TerraformDir.create(cluster.env());
});

test.after(async () => {
  await tf?.remove();
  await cluster?.down();
});

test("API: online keys change in place; the others are refused unless unchanged; planned keys are refused", async () => {
  assert.is((await api("POST", "/v1/volumes", { name: "walk-api" })).status, 201);
  for (const key of online) {
    const r = await api("PATCH", "/v1/volumes/walk-api", { [key.name]: changed(key) });
    assert.is(r.status, 200, `${key.name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body[key.field], key.kind.parse(changed(key), key.name), key.name);
  }
  const after = await api("GET", "/v1/volumes/walk-api");
  for (const key of notOnline) {
    const r = await api("PATCH", "/v1/volumes/walk-api", { [key.name]: changed(key) });
    assert.is(r.status, 409, key.name);
    assert.equal([r.body.error?.code, r.body.error?.field], ["volume.key_immutable", key.name]);
    const same = await api("PATCH", "/v1/volumes/walk-api", { [key.name]: after.body[key.field] });
    assert.is(same.status, 200, `${key.name} given its current value changes nothing`);
  }
  for (const key of planned) {
    const create = await api("POST", "/v1/volumes", { name: "walk-planned", [key.name]: changed(key) });
    assert.is(create.status, 400, key.name);
    assert.is(create.body.error?.field, key.name);
    assert.match(String(create.body.error?.message), "not built yet", key.name);
    const update = await api("PATCH", "/v1/volumes/walk-api", { [key.name]: changed(key) });
    assert.is(update.status, 400, key.name);
    assert.is(update.body.error?.field, key.name);
  }
  assert.is((await api("GET", "/v1/volumes/walk-planned")).status, 404, "no planned key made a volume");
});

test("io_profile and io_priority reach an attached volume's I/O at once, also when changed through another node", async () => {
  assert.is((await api("POST", "/v1/volumes", { name: "walk-tune" })).status, 201);
  assert.is((await api("POST", "/v1/volumes/walk-tune/attach")).status, 200);
  const retuned = (profile: string, priority: string) =>
    waitFor(`node1 retunes walk-tune to ${profile}/${priority}`, async () =>
      (await cluster.agentLog("node1"))
        .split("\n")
        .filter((line) => line.includes('"volume retuned"'))
        .map((line) => JSON.parse(line))
        .find((e) => e.volume === "walk-tune" && e.ioProfile === profile && e.ioPriority === priority),
    );
  assert.is((await api("PATCH", "/v1/volumes/walk-tune", { io_profile: "db" })).status, 200);
  await retuned("db", "medium");
  const other = await cluster.hf(["volume", "update", "walk-tune", "--io-priority", "low"], "node2");
  assert.is(other.code, 0, other.stderr);
  await retuned("db", "low");
  assert.is((await api("POST", "/v1/volumes/walk-tune/detach")).status, 200);
});

test("CLI: `volume update` takes every online key; planned keys exit 2 from create and update", async () => {
  assert.is((await cluster.hf(["volume", "create", "walk-cli"])).code, 0);
  for (const key of online) {
    const flag =
      key.name === "labels" ? ["--label", "walk=yes"] : [`--${key.name.replaceAll("_", "-")}`, asText(key)];
    const r = await cluster.hf(["volume", "update", "walk-cli", ...flag]);
    assert.is(r.code, 0, `${key.name}: ${r.stderr}`);
    assert.equal((await inspect("walk-cli"))[key.field], key.kind.parse(changed(key), key.name), key.name);
  }
  for (const key of notOnline.filter((k) => k.kind.type !== "map")) {
    const r = await cluster.hf([
      "volume",
      "update",
      "walk-cli",
      `--${key.name.replaceAll("_", "-")}`,
      asText(key),
    ]);
    assert.is(r.code, 2, `${key.name} is not an option of update: ${r.stderr}`);
  }
  for (const key of planned) {
    const flag = `--${key.name.replaceAll("_", "-")}`;
    const create = await cluster.hf(["volume", "create", "walk-cli-planned", flag, asText(key)]);
    assert.is(create.code, 2, key.name);
    assert.match(create.stderr, `${key.name}: is not built yet`);
    if (key.mutability === "online") {
      const update = await cluster.hf(["volume", "update", "walk-cli", flag, asText(key)]);
      assert.is(update.code, 2, key.name);
      assert.match(update.stderr, `${key.name}: is not built yet`);
    }
  }
});

test("Terraform: online keys update in place, replace keys plan a replacement, fixed and planned are refused", async () => {
  const base = { name: "walk-tf" };
  await tf.write({ "main.tf": providerBlock() + volume("w", base) });
  await tf.apply();
  const before = await inspect("walk-tf");

  // Every online key at once: one in-place update, each attribute's line in the plan, and nothing left after.
  const all = Object.fromEntries(online.map((k) => [attribute(k), { hcl: asHcl(k) }]));
  await tf.write({ "main.tf": providerBlock() + volume("w", { ...base, ...all }) });
  const plan = await tf.plan();
  assert.is(plan.code, 2, plan.stderr);
  assert.match(plan.stdout, "holdfast_volume.w will be updated in-place");
  assert.match(plan.stdout, "Plan: 0 to add, 1 to change, 0 to destroy.");
  for (const key of online) assert.match(plan.stdout, new RegExp(`~ ${attribute(key)}\\s+=`), key.name);
  await tf.apply();
  const after = await inspect("walk-tf");
  assert.is(after.id, before.id, "the same volume");
  for (const key of online)
    assert.equal(after[key.field], key.kind.parse(changed(key), key.name), `${key.name} changed in place`);
  assert.is(new Set(after.replicas.map((r) => r.node)).size, after.repl, "one replica per node");
  assert.is((await tf.plan()).code, 0, "no changes after the update");

  // Every replace key changed at once: one plan, each key's line forcing the replacement.
  const replaced = notOnline.filter((k) => k.mutability === "replace");
  const withReplaced = Object.fromEntries(replaced.map((k) => [attribute(k), { hcl: asHcl(k) }]));
  await tf.write({ "main.tf": providerBlock() + volume("w", { ...base, ...all, ...withReplaced }) });
  const replacing = await tf.plan();
  assert.is(replacing.code, 2, replacing.stderr);
  assert.match(replacing.stdout, "holdfast_volume.w must be replaced");
  for (const key of replaced)
    assert.match(replacing.stdout, new RegExp(`${attribute(key)}\\s+= .*# forces replacement`), key.name);
  for (const key of notOnline.filter((k) => k.mutability === "fixed")) {
    await tf.write({
      "main.tf": providerBlock() + volume("w", { ...base, ...all, [attribute(key)]: { hcl: asHcl(key) } }),
    });
    const r = await tf.plan();
    assert.match(r.stdout + r.stderr, `Cannot change ${attribute(key)}`, key.name);
    const apply = await tf.run("apply", "-no-color", "-input=false", "-auto-approve");
    assert.is(apply.code, 1, key.name);
    assert.match(apply.stderr, `Error: Cannot change ${attribute(key)}`);
  }
  assert.is((await inspect("walk-tf")).id, before.id, "nothing was replaced by the plans");

  const withPlanned = Object.fromEntries(planned.map((k) => [attribute(k), { hcl: asHcl(k) }]));
  await tf.write({ "main.tf": providerBlock() + volume("p", { name: "walk-tf-planned", ...withPlanned }) });
  const refused = await tf.plan();
  assert.is(refused.code, 1);
  for (const key of planned)
    assert.match(
      refused.stderr,
      new RegExp(`Invalid ${attribute(key)}[\\s\\S]*?${key.name}: is not built yet`),
      key.name,
    );

  await tf.write({ "main.tf": providerBlock() });
  await tf.apply();
});

test("scale=3 through Terraform makes the set REST makes; an online change reaches every member", async () => {
  const shape = (members: Array<{ name: string; spec: string }>, base: string) =>
    members.map((m) => [m.name.replace(`${base}.`, ""), m.spec.replace(`name=${m.name},`, "")]);
  assert.is((await api("POST", "/v1/volumes", { spec: "name=rset,size=32M,scale=3" })).status, 201);
  const rest = (await api("GET", "/v1/volume-sets/rset")).body as unknown as {
    members: Array<{ name: string; spec: string }>;
  };
  await tf.write({
    "main.tf": `${providerBlock()}resource "holdfast_volume" "set" {\n  spec = "name=tset,size=32M,scale=3"\n}\n`,
  });
  await tf.apply();
  const made = (await api("GET", "/v1/volume-sets/tset")).body as unknown as typeof rest;
  assert.equal(shape(made.members, "tset"), shape(rest.members, "rset"));
  assert.match(
    await tf.ok("state", "show", "-no-color", "holdfast_volume.set"),
    /members\s+= \[\s+"tset\.1",\s+"tset\.2",\s+"tset\.3",/,
  );
  assert.is((await tf.plan()).code, 0, "no changes after the create");

  await tf.write({
    "main.tf": `${providerBlock()}resource "holdfast_volume" "set" {\n  spec = "name=tset,size=32M,scale=3,io_profile=db"\n}\n`,
  });
  const plan = await tf.plan();
  assert.match(plan.stdout, "update in-place");
  await tf.apply();
  for (const index of [1, 2, 3]) assert.is((await inspect(`tset.${index}`)).ioProfile, "db");
  assert.is((await tf.plan()).code, 0);
  await tf.write({ "main.tf": providerBlock() });
  await tf.apply();
  assert.is((await api("GET", "/v1/volume-sets/tset")).status, 404, "destroy deleted every member");
  assert.is((await api("DELETE", "/v1/volume-sets/rset")).status, 204);
});

test("import then plan is empty, for a volume declared as a spec and as attributes", async () => {
  const spec = "name=walk-imp-spec,size=2G,repl=2,io_profile=db,labels=app:pg";
  assert.is((await api("POST", "/v1/volumes", { spec })).status, 201);
  assert.is(
    (await api("POST", "/v1/volumes", { name: "walk-imp-attr", size: "2G", io_priority: "high" })).status,
    201,
  );
  await tf.write({
    "main.tf":
      providerBlock() +
      `resource "holdfast_volume" "s" {\n  spec = ${JSON.stringify(spec)}\n}\n` +
      volume("a", { name: "walk-imp-attr", size: "2G", io_priority: "high" }),
  });
  await tf.ok("import", "-no-color", "-input=false", "holdfast_volume.s", spec);
  await tf.ok("import", "-no-color", "-input=false", "holdfast_volume.a", "walk-imp-attr");
  const plan = await tf.plan();
  assert.is(plan.code, 0, plan.stdout + plan.stderr);
  await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
});

test.run();
