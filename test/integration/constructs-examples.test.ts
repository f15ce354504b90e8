import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAgentConfig } from "../../agent/src/config/index.js";
import { ROOT } from "../support/agent-process.js";
import { EXAMPLES, REFRESH_COMMAND, snapshotPath, synthExample } from "../support/example-snapshots.js";

// The three `npx tsx main.ts` runs at once: each is mostly process start-up.
let synthesized: Promise<unknown[]>;
test.before(() => {
  synthesized = Promise.all(EXAMPLES.map((name) => synthExample(name)));
});

for (const [i, name] of EXAMPLES.entries()) {
  test(`examples/${name} synthesizes to its committed snapshot`, async () => {
    const actual = (await synthesized)[i];
    const expected = JSON.parse(await readFile(snapshotPath(name), "utf8"));
    try {
      assert.equal(actual, expected);
    } catch (err) {
      (err as Error).message =
        `examples/${name} no longer matches snapshot.json; if the change is intended, run ${REFRESH_COMMAND} and review the diff.\n${(err as Error).message}`;
      throw err;
    }
  });
}

test("the hybrid example writes Chef JSON the agent reads as is, with the embedded etcd on the first three hosts", async () => {
  // The previous test synthesized it.
  const file = join(ROOT, "examples/hybrid/cdktf.out/chef/dc1-stor1.json");
  const json = JSON.parse(await readFile(file, "utf8"));
  assert.match(json.holdfast_cookbook.etcd.initial_cluster, /^dc1-stor1=https:\/\/192\.168\.50\.11:2380,/);
  const config = await loadAgentConfig({ file, flags: {} });
  assert.is(config.store, "etcds://192.168.50.11:2379,192.168.50.12:2379,192.168.50.13:2379");
  assert.equal([config.nodeId, config.zone, config.rack, config.leaseTtl], ["dc1-stor1", "dc1", "r1", 10]);
});

test.run();
