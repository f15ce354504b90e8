import { test } from "uvu";
import * as assert from "uvu/assert";
import { type PlacementNode, placeReplicas } from "../../agent/src/cluster/index.js";
import { SpecError } from "../../agent/src/errors.js";

const GiB = 1024 ** 3;
const node = (
  id: string,
  zone: string,
  rack = "r1",
  free = 100 * GiB,
  state: "up" | "down" = "up",
): PlacementNode => ({
  id,
  zone,
  rack,
  free,
  state,
});
const any = { nodes: [], zones: [], racks: [], existing: [] };
const ids = (nodes: PlacementNode[]) => nodes.map((n) => n.id).sort();

test("replicas spread over zones before racks before nodes", () => {
  const cluster = [node("a1", "a"), node("a2", "a"), node("b1", "b"), node("b2", "b"), node("c1", "c")];
  const placed = placeReplicas(cluster, { ...any, count: 3 });
  assert.equal(new Set(placed.map((n) => n.zone)).size, 3, "one replica per zone");
  const racks = [node("x1", "z", "r1"), node("x2", "z", "r1"), node("y1", "z", "r2")];
  assert.equal(new Set(placeReplicas(racks, { ...any, count: 2 }).map((n) => n.rack)).size, 2, "two racks");
});

test("among equals, the node with the most free space wins; existing replicas count for the spread", () => {
  const cluster = [node("a1", "a", "r1", 10 * GiB), node("a2", "a", "r1", 50 * GiB), node("b1", "b")];
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 1, existing: ["b1"] })), ["a2"]);
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 2 })), ["a2", "b1"]);
});

test("nodes=, zones= and racks= constrain the choice; down nodes are never chosen", () => {
  const cluster = [
    node("a1", "a"),
    node("b1", "b"),
    node("c1", "c", "r2"),
    node("d1", "d", "r1", GiB, "down"),
  ];
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 2, nodes: ["a1", "c1"] })), ["a1", "c1"]);
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 1, zones: ["b"] })), ["b1"]);
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 1, racks: ["r2"] })), ["c1"]);
  assert.equal(ids(placeReplicas(cluster, { ...any, count: 3 })), ["a1", "b1", "c1"]);
});

test("an impossible placement is refused with the key at fault and the reason", () => {
  const cluster = [node("a1", "a"), node("b1", "b"), node("c1", "c", "r1", GiB, "down")];
  const refused = (request: Parameters<typeof placeReplicas>[1]) => {
    try {
      placeReplicas(cluster, request);
    } catch (err) {
      assert.instance(err, SpecError);
      return err as SpecError;
    }
    throw new Error("placement should have been refused");
  };
  const tooMany = refused({ ...any, count: 3 });
  assert.is(tooMany.field, "repl");
  assert.match(tooMany.message, /needs 3 more node\(s\).*only 2 eligible.*c1 \(down\)/);
  const zones = refused({ ...any, count: 2, zones: ["a"] });
  assert.is(zones.field, "zones");
  assert.match(zones.message, /b1 \(zone b not in zones=\)/);
  assert.is(refused({ ...any, count: 1, nodes: ["zz"] }).field, "nodes");
});

test.run();
