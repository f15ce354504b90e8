import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ReplicaRecord } from "../../agent/src/volumes/records.js";
import { RepairPolicy } from "../../agent/src/volumes/repair-policy.js";

// The replication policy's decisions over a clock the test moves: no agent, no waiting.

function clocked(timeoutMs: number) {
  let now = 1_000_000;
  const policy = new RepairPolicy(timeoutMs, () => now);
  return { policy, advance: (ms: number) => (now += ms) };
}

test("a down node's replica is waited for until the replica timeout, then rebuilt; counted from when it was first seen down", () => {
  const { policy, advance } = clocked(600_000);
  assert.is(policy.stepFor("n2", false), "wait");
  advance(599_999);
  assert.is(policy.stepFor("n2", false), "wait");
  advance(1);
  assert.is(policy.stepFor("n2", false), "rebuild");
  assert.is(policy.stepFor("n3", false), "wait", "each node has its own clock");
});

test("a node that comes back before the timeout is resynced, and its down time starts again from zero", () => {
  const { policy, advance } = clocked(10_000);
  policy.stepFor("n2", false);
  advance(9_000);
  assert.is(policy.stepFor("n2", true), "resync");
  policy.resynced("n2");
  advance(5_000);
  assert.is(policy.stepFor("n2", false), "wait", "down again: a new 10 s, not the 9 s already spent");
  advance(9_999);
  assert.is(policy.stepFor("n2", false), "wait");
  advance(1);
  assert.is(policy.stepFor("n2", false), "rebuild");
});

test("a failing resync backs off 2 s, 4 s, 8 s ... up to 5 minutes; a success resets it", () => {
  const { policy, advance } = clocked(600_000);
  const delays = Array.from({ length: 10 }, () => policy.resyncFailed("n2"));
  assert.equal(delays, [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]);
  assert.is(policy.stepFor("n2", true), "wait");
  advance(299_999);
  assert.is(policy.stepFor("n2", true), "wait");
  advance(1);
  assert.is(policy.stepFor("n2", true), "resync");
  policy.resynced("n2");
  assert.is(policy.resyncFailed("n2"), 2_000, "after a success the next failure starts over");
});

test("a replaced replica is forgotten: its node's return is not a resync of the old one's backoff", () => {
  const { policy } = clocked(1);
  policy.resyncFailed("n2");
  policy.replaced("n2");
  assert.is(policy.stepFor("n2", true), "resync");
});

test("too many replicas: the ones not in use go first, the primary never", () => {
  const replicas: ReplicaRecord[] = ["n1", "n2", "n3", "n4"].map((node) => ({
    node,
    pool: "p",
    state: "in-sync",
  }));
  const open = new Set(["n1", "n2", "n4"]);
  const pick = (count: number) =>
    RepairPolicy.extra(
      replicas,
      count,
      (n) => open.has(n),
      (n) => n === "n1",
    ).map((r) => r.node);
  assert.equal(pick(1), ["n3"]);
  assert.equal(pick(2), ["n3", "n2"]);
  assert.equal(pick(4), ["n3", "n2", "n4"], "never the primary, even when asked for all");
  assert.equal(pick(0), []);
});

test.run();
