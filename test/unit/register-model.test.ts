import { test } from "uvu";
import * as assert from "uvu/assert";
import { BLOCK, blockContent, decode, RegisterModel } from "../soak/register-model.js";

const model = () => new RegisterModel(() => 0);
const kinds = (m: RegisterModel) => m.anomalies.map((a) => a.kind);

test("a block's content names its write, and anything else is corrupt", () => {
  assert.equal(decode(7, blockContent(7, 3)), { kind: "write", seq: 3 });
  assert.equal(decode(7, Buffer.alloc(BLOCK)), { kind: "zero" });
  assert.equal(decode(8, blockContent(7, 3)), { kind: "corrupt" }, "another block's write");
  const torn = Buffer.concat([blockContent(7, 3).subarray(0, 2048), blockContent(7, 4).subarray(2048)]);
  assert.equal(decode(7, torn), { kind: "corrupt" });
});

test("reads of the acknowledged write, or of zeros before any, are fine", () => {
  const m = model();
  m.read(1, Buffer.alloc(BLOCK));
  m.invoked(1, 1);
  m.acknowledged(1, 1);
  m.read(1, blockContent(1, 1));
  assert.equal(kinds(m), []);
});

test("an acknowledged write that a read no longer sees is a stale read, or a lost write at the end", () => {
  const m = model();
  m.invoked(1, 1);
  m.acknowledged(1, 1);
  m.invoked(1, 2);
  m.acknowledged(1, 2);
  m.read(1, blockContent(1, 1));
  m.read(1, Buffer.alloc(BLOCK), true);
  assert.equal(kinds(m), ["stale-read", "lost-write"]);
});

test("an indeterminate write may or may not show, but once seen it stays", () => {
  const m = model();
  m.invoked(2, 1);
  m.acknowledged(2, 1);
  m.invoked(2, 2); // its connection died: indeterminate
  m.read(2, blockContent(2, 1));
  m.read(2, blockContent(2, 2));
  assert.equal(kinds(m), []);
  m.read(2, blockContent(2, 1));
  assert.equal(kinds(m), ["stale-read"], "going back after the indeterminate write was seen");
});

test("a read of a write never issued is impossible; garbage is corrupt", () => {
  const m = model();
  m.invoked(3, 1);
  m.acknowledged(3, 1);
  m.read(3, blockContent(3, 5));
  m.read(3, Buffer.alloc(BLOCK, 0xee));
  assert.equal(kinds(m), ["impossible-read", "corrupt-read"]);
});

test.run();
