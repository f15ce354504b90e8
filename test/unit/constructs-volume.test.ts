import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HoldfastProvider, Testing } from "../../constructs/cdktf.js";
import { HoldfastCluster, HoldfastVolume, OnPremNodeGroup } from "../../constructs/index.js";
import { renderVolumeProps, VOLUME_PROPS_PATH } from "../../scripts/gen-volume-props.js";
import { fakeArtifact, resources, synth, testStack } from "../support/constructs.js";

function stack() {
  const s = testStack();
  new HoldfastProvider(s, "holdfast");
  return s;
}

test("a volume from props sets only the keys given, under the provider's attribute names", () => {
  // WHEN
  const s = stack();
  new HoldfastVolume(s, "pgdata", {
    volume: { name: "pgdata", size: "20G", repl: 1, fs: "xfs", labels: { app: "pg" }, ioProfile: "db" },
  });
  // THEN
  const text = Testing.synth(s, true);
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "holdfast_volume", {
      name: "pgdata",
      size: "20G",
      replicas: 1,
      filesystem: "xfs",
      labels: { app: "pg" },
      io_profile: "db",
    }),
  );
  const [volume] = resources(JSON.parse(text), "holdfast_volume");
  assert.equal(Object.keys(volume ?? {}).sort(), [
    "filesystem",
    "io_profile",
    "labels",
    "name",
    "replicas",
    "size",
  ]);
});

test("a volume from an inline spec goes to the provider in its canonical form", () => {
  const s = stack();
  const v = new HoldfastVolume(s, "logs", { spec: "size=2048M,name=logs,LABELS=tier:web;app:x,ha_level=1" });
  assert.ok(
    Testing.toHaveResourceWithProperties(Testing.synth(s, true), "holdfast_volume", {
      spec: "name=logs,size=2G,repl=1,labels=app:x;tier:web",
    }),
  );
  assert.is(v.fullSpec.fs, "ext4");
});

for (const [name, props, message] of [
  ["both spec and volume", { spec: "a", volume: { name: "a" } }, /^spec: give either spec or volume/],
  ["neither", {}, /^spec: give either spec or volume/],
  ["a bad size in a spec", { spec: "name=a,size=12X" }, /^spec: size: "12X" is not a size/],
  ["an unknown key", { spec: "name=a,colour=red" }, /^spec: .*colour/],
  ["repl out of range in props", { volume: { name: "a", repl: 4 } }, /^volume: repl: must be 1, 2 or 3/],
] as const) {
  test(`${name} fails synthesis with the agent's message`, () => {
    assert.throws(() => new HoldfastVolume(stack(), "v", props as never), message);
  });
}

test("more replicas than the cluster's zones with spread: zones is an error; over nodes it fits", () => {
  const build = (spread: "zones" | "nodes") => {
    const s = stack();
    const cluster = new HoldfastCluster(s, "cluster", {
      clusterName: "c",
      metadata: { etcdEndpoints: ["10.0.0.5:2379"] },
      artifactPath: fakeArtifact(),
    });
    new OnPremNodeGroup(s, "dc", {
      cluster,
      hosts: ["a", "a", "b"].map((zone, i) => ({ name: `h${i}`, address: `10.0.0.${i + 1}`, zone })),
    });
    new HoldfastVolume(s, "pg", { spec: "name=pg,repl=3", cluster, spread });
    return s;
  };
  assert.throws(() => synth(build("zones")), /pg: repl=3 with spread: zones needs 3 zones; cluster c has 2/);
  synth(build("nodes"));
});

test("a planned key fails synthesis naming the prop and what it waits for; its default passes", () => {
  const s = stack();
  assert.throws(
    () => new HoldfastVolume(s, "enc", { volume: { name: "enc", secure: true } }),
    (err: Error) => /volume: secure: is not built yet/.test(err.message) && /in test\/enc/.test(err.message),
  );
  assert.throws(
    () => new HoldfastVolume(s, "sh", { spec: "name=sh,shared=true" }),
    /spec: shared: is not built yet/,
  );
  new HoldfastVolume(s, "plain", { volume: { name: "plain", secure: false } });
});

test("constructs/volume-fields.ts is what scripts/gen-volume-props.ts writes from the key table", () => {
  assert.fixture(readFileSync(VOLUME_PROPS_PATH, "utf8"), renderVolumeProps());
});

test.run();
