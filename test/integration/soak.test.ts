import { test } from "uvu";
import * as assert from "uvu/assert";
import { runCampaign } from "../soak/campaign.js";
import { FAULT_KINDS } from "../soak/nemesis.js";
import { renderReport } from "../soak/report.js";

// The fault campaign's short seeded run (one round of every fault kind: about two minutes), part of the suite;
// `npm run soak` runs the long one. Real agents and etcd on 127.0.91.x, node3 in a network namespace: kill, freeze and
// partition of a replica's node and of the attached node (with takeover), an etcd pause; clients checked against the
// register model throughout.
test("a short seeded fault campaign: every fault kind, no anomaly, replicas identical, every write kept", async () => {
  const result = await runCampaign({ minutes: 1, seed: 11, net: "127.0.91" });
  const report = renderReport(result);
  assert.equal(result.anomalies, [], report);
  for (const kind of FAULT_KINDS) {
    assert.ok(
      result.faults.some((f) => f.kind === kind),
      `the run met ${kind}\n${report}`,
    );
  }
  assert.ok(result.counts.writesAcknowledged > 0 && result.counts.readsChecked > 0, report);
  assert.equal(result.differing, []);
  assert.ok(result.finalReads > 0);
});

test.run();
