import { rejects } from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EtcdStore, LocalStore, type MetaStore, StoreUnavailableError } from "../../agent/src/meta/index.js";
import { type ClusterEtcd, EtcdProcess } from "../support/etcd-process.js";
import { reportHookErrors } from "../support/hook-errors.js";

// One contract, two stores: the local file store and a real etcd process must answer the same way, so the
// code above them cannot tell which one it runs on.

let etcd: EtcdProcess;
let access: ClusterEtcd;
let dir = "";
let prefix = 0;
/** The cluster prefix the etcd client's role is limited to: every key of the contract lives under it. */
const CLUSTER = "/holdfast/meta/";

const stores: Array<[string, () => Promise<MetaStore>]> = [
  ["local", () => LocalStore.open(join(dir, `meta-${++prefix}.json`))],
  [
    "etcd",
    () => EtcdStore.open({ endpoints: [etcd.endpoint], prefix: CLUSTER, tls: access.tls, timeoutMs: 2000 }),
  ],
];

for (const [name, open] of stores) {
  const contract = reportHookErrors(suite(`${name} store`));
  let store: MetaStore;
  let root = "";

  contract.before(async () => {
    dir ||= await mkdtemp(join(tmpdir(), "hf-meta-"));
    if (!etcd) {
      etcd = await EtcdProcess.start();
      access = await etcd.clusterAccess("meta");
    }
  });
  contract.before.each(async () => {
    store = await open();
    root = `${CLUSTER}t${Date.now()}-${++prefix}`;
  });
  contract.after.each(async () => {
    await store.close();
  });

  contract("put if absent succeeds once; compare on the revision guards an update", async () => {
    assert.ok(await store.commit([{ key: `${root}/a`, revision: 0 }], [{ put: `${root}/a`, value: "1" }]));
    assert.not.ok(
      await store.commit([{ key: `${root}/a`, revision: 0 }], [{ put: `${root}/a`, value: "2" }]),
    );
    const a = await store.get(`${root}/a`);
    assert.is(a?.value, "1");
    assert.ok((a?.revision ?? 0) > 0);
    assert.not.ok(
      await store.commit(
        [{ key: `${root}/a`, revision: (a?.revision ?? 0) + 100 }],
        [{ delete: `${root}/a` }],
      ),
    );
    assert.ok(
      await store.commit(
        [{ key: `${root}/a`, revision: a?.revision ?? -1 }],
        [{ put: `${root}/b/x`, value: "3" }, { delete: `${root}/a` }],
      ),
    );
    assert.is(await store.get(`${root}/a`), undefined);
  });

  contract("list returns a prefix in key order; a commit with no compares always applies", async () => {
    assert.ok(
      await store.commit(
        [],
        ["c", "a", "b"].map((k) => ({ put: `${root}/list/${k}`, value: k })),
      ),
    );
    await store.commit([], [{ put: `${root}/listed-not`, value: "x" }]);
    assert.equal(
      (await store.list(`${root}/list/`)).map((e) => e.value),
      ["a", "b", "c"],
    );
  });

  contract("concurrent commits on one key: exactly one wins", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.commit([{ key: `${root}/lock`, revision: 0 }], [{ put: `${root}/lock`, value: String(i) }]),
      ),
    );
    assert.is(results.filter(Boolean).length, 1);
  });

  contract.after(async () => {
    if (name === "etcd") {
      await etcd.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
  contract.run();
}

const outage = reportHookErrors(suite("etcd outage"));
let down: EtcdProcess;
let downAccess: ClusterEtcd;
outage.before(async () => {
  down = await EtcdProcess.start();
  downAccess = await down.clusterAccess("meta");
});
outage.after(async () => {
  await down.destroy();
});

outage(
  "a stopped etcd makes requests fail with a clear error within the timeout, and they work again after",
  async () => {
    const store = await EtcdStore.open({
      endpoints: [down.endpoint],
      prefix: CLUSTER,
      tls: downAccess.tls,
      timeoutMs: 1000,
    });
    const key = `${CLUSTER}x`;
    await store.commit([], [{ put: key, value: "1" }]);
    await down.stop("SIGKILL");
    const started = Date.now();
    await rejects(
      () => store.get(key),
      (err: unknown) =>
        err instanceof StoreUnavailableError && /etcd at https:\/\/127\.0\.0\.1:\d+/.test(err.message),
    );
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
    await down.resume();
    let value: string | undefined;
    for (let i = 0; i < 50 && value === undefined; i++) {
      value = await store.get(key).then(
        (v) => v?.value,
        () => undefined,
      );
      if (value === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    assert.is(value, "1");
    await store.close();
  },
);

outage.run();
