import { rejects } from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { LocalStore } from "../../agent/src/meta/index.js";

let dir = "";
test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-meta-"));
});
test.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("commits survive a reopen (the contract itself is in test/integration/meta-store.test.ts)", async () => {
  const path = join(dir, "meta.json");
  const store = await LocalStore.open(path);
  assert.ok(await store.commit([{ key: "/a", revision: 0 }], [{ put: "/a", value: "1" }]));
  assert.not.ok(await store.commit([{ key: "/a", revision: 0 }], [{ put: "/a", value: "2" }]));
  const a = await store.get("/a");
  assert.is(a?.value, "1");
  assert.ok(
    await store.commit(
      [{ key: "/a", revision: a?.revision ?? -1 }],
      [{ put: "/b/x", value: "3" }, { delete: "/a" }],
    ),
  );
  await store.close();
  const reopened = await LocalStore.open(path);
  assert.is(await reopened.get("/a"), undefined);
  assert.equal(
    (await reopened.list("/b/")).map((e) => e.value),
    ["3"],
  );
});

test("a corrupt metadata file is an error that names the file, not an empty store", async () => {
  const path = join(dir, "meta.json");
  await writeFile(path, "{not json");
  await rejects(() => LocalStore.open(path), /meta\.json/);
});

test.run();
