import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ObjectValue } from "../../providers/src/protocol/index.js";
import { UNKNOWN } from "../../providers/src/protocol/index.js";
import { volumeResource } from "../../providers/src/resource-volume.js";
import { sameValue, VOLUME_ATTRIBUTES } from "../../providers/src/volume-attributes.js";

// holdfast_volume's validation and planning, which need no agent: what Terraform is told before any API call.

const attribute = (name: string) => volumeResource.schema.attributes.find((a) => a.name === name);

/** A configuration as Terraform sends it: every attribute present, null when not set. */
function config(values: ObjectValue): ObjectValue {
  const all: ObjectValue = { timeouts: null };
  for (const attr of volumeResource.schema.attributes) all[attr.name] = null;
  return { ...all, ...values };
}

/** The state after a create of `values`, as the agent would report it. */
function stateOf(values: ObjectValue): ObjectValue {
  const { planned } = volumeResource.plan({ prior: null, config: config(values) });
  return {
    ...planned,
    id: "v1",
    state: "detached",
    replica_nodes: ["node1"],
    attached_node: null,
    created_at: "2026-01-01T00:00:00Z",
  };
}

test("validate: a key that is not built yet is refused on its attribute, naming what it waits for", () => {
  const refused = (values: ObjectValue) =>
    volumeResource.validate(config({ name: "a", ...values })).map((d) => [d.path?.join("."), d.detail]);
  const [[path, detail] = []] = refused({ secure: true });
  assert.is(path, "secure");
  assert.match(String(detail), "not built yet");
  assert.match(String(refused({ shared: true })[0]?.[1]), "issue 14");
  assert.match(String(refused({ snap_schedule: "daily=02:00#7" })[0]?.[1]), "issue 15");
  assert.equal(refused({ secure: false, shared: false }), [], "the default is what every volume does");
  assert.equal(
    volumeResource.validate(config({ spec: "name=a,parent=b" })).map((d) => d.path),
    [["spec"]],
  );
});

test("plan: changing scale is refused (a warning at plan, as for a shrink), not planned as a replacement", () => {
  const prior = stateOf({ name: "a", scale: 3 });
  const { requiresReplace, diagnostics } = volumeResource.plan({
    prior,
    config: config({ name: "a", scale: 4 }),
  });
  assert.equal(requiresReplace, []);
  assert.equal(
    diagnostics.map((d) => [d.severity, d.summary, d.path]),
    [["warning", "Cannot change scale", ["scale"]]],
  );
  assert.ok(attribute("scale")?.description.includes("Cannot change once the volume exists"));
});

test("validate: each mistake on its attribute", () => {
  const paths = (values: ObjectValue) =>
    volumeResource.validate(config(values)).map((d) => d.path?.join("."));
  assert.equal(paths({ name: "a", replicas: 4 }), ["replicas"]);
  assert.equal(paths({ name: "a", size: "12Q" }), ["size"]);
  assert.equal(paths({ name: "a", size: 1000 }), ["size"], "not a multiple of the block size");
  assert.equal(paths({ spec: "name=a,size=12Q" }), ["spec"]);
  assert.equal(paths({ spec: "name=a", size: "1G", replicas: 2 }), ["size", "replicas"]);
  assert.equal(paths({ size: "1G" }), ["name"]);
  assert.equal(paths({ name: "a", timeouts: { create: "soon", update: null, delete: null } }), [
    "timeouts.create",
  ]);
  assert.equal(paths({ name: UNKNOWN, size: UNKNOWN }), [], "unknown values wait for apply");
  assert.equal(paths({ name: "a", size: "2G", labels: { app: "pg" }, zones: ["z1", "z2"] }), []);
});

test("plan: a create plans every key from the table's defaults and leaves the agent's attributes unknown", () => {
  const { planned, requiresReplace, diagnostics } = volumeResource.plan({
    prior: null,
    config: config({ name: "a" }),
  });
  assert.equal([requiresReplace, diagnostics], [[], []]);
  assert.equal(
    [planned?.size, planned?.replicas, planned?.filesystem, planned?.labels],
    ["1G", 1, "ext4", {}],
  );
  assert.is(planned?.id, UNKNOWN);
  assert.is(planned?.replica_nodes, UNKNOWN);
});

test("plan: a spec fills in the separate attributes", () => {
  const { planned } = volumeResource.plan({
    prior: null,
    config: config({ spec: "name=pg,size=20G,repl=3,labels=a:b" }),
  });
  assert.equal(
    [planned?.name, planned?.size, planned?.replicas, planned?.labels],
    ["pg", "20G", 3, { a: "b" }],
  );
  assert.is(planned?.spec, "name=pg,size=20G,repl=3,labels=a:b");
});

test("plan: growing is in place; replicas in place with replica nodes unknown; shrinking warned on size", () => {
  const prior = stateOf({ name: "a", size: "1G" });
  const grow = volumeResource.plan({ prior, config: config({ name: "a", size: 2 ** 31 }) });
  assert.equal([grow.requiresReplace, grow.diagnostics], [[], []]);
  assert.is(grow.planned?.id, "v1");
  assert.is(grow.planned?.size, 2 ** 31, "planned exactly as configured");
  const replicas = volumeResource.plan({ prior, config: config({ name: "a", size: "1G", replicas: 3 }) });
  assert.equal(replicas.requiresReplace, []);
  assert.is(replicas.planned?.replica_nodes, UNKNOWN);
  const shrink = volumeResource.plan({
    prior: stateOf({ name: "a", size: "2G" }),
    config: config({ name: "a", size: "1G" }),
  });
  // A warning, so the normal plan Terraform runs before a destroy still succeeds; the plan shows 2G -> 1G.
  assert.equal(
    shrink.diagnostics.map((d) => [d.severity, d.summary, d.path]),
    [["warning", "Volumes cannot shrink", ["size"]]],
  );
  assert.match(
    String(shrink.diagnostics[0]?.detail),
    "The volume is 2G (2147483648 bytes) and the configuration asks for 1G",
  );
  assert.equal([shrink.planned?.size, shrink.requiresReplace], ["1G", []]);
  const spec = volumeResource.plan({
    prior: stateOf({ spec: "name=a,size=2G" }),
    config: config({ spec: "name=a,size=1G" }),
  });
  assert.equal(
    spec.diagnostics.map((d) => d.path),
    [["spec"]],
  );
  // Destroy: no configuration, no diagnostics.
  assert.equal(
    volumeResource.plan({ prior: stateOf({ name: "a", size: "2G" }), config: null }).diagnostics,
    [],
  );
});

test("plan: a new name, filesystem or placement replaces, and a smaller size is then fine", () => {
  const prior = stateOf({ name: "a", size: "2G" });
  const rename = volumeResource.plan({ prior, config: config({ name: "b", size: "1G" }) });
  assert.equal(rename.requiresReplace, [["name"]]);
  assert.equal(rename.diagnostics, []);
  assert.is(rename.planned?.id, UNKNOWN);
  const fs = volumeResource.plan({
    prior,
    config: config({ name: "a", size: "2G", filesystem: "xfs", zones: ["z1"] }),
  });
  assert.equal(fs.requiresReplace, [["filesystem"], ["zones"]]);
});

test("plan: the same value spelt differently is no change", () => {
  const prior = stateOf({ name: "a", size: "1024M" });
  const { planned } = volumeResource.plan({ prior, config: config({ name: "a" }) });
  assert.is(planned?.size, "1024M", "the default 1G, kept in the prior spelling");
  const size = VOLUME_ATTRIBUTES.find((a) => a.name === "size");
  assert.ok(size && sameValue(size, "1G", 1073741824) && sameValue(size, "1G", "1024M"));
  assert.not.ok(size && sameValue(size, "1G", "2G"));
});

test("plan: destroy plans null", () => {
  assert.is(volumeResource.plan({ prior: stateOf({ name: "a" }), config: null }).planned, null);
});

test.run();
