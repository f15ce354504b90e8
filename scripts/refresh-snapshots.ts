// Rewrites examples/<name>/snapshot.json from a fresh synthesis of each example, after a deliberate change to the
// constructs or the examples:  node --import tsx scripts/refresh-snapshots.ts
// Review the diff before committing it: the snapshot test (test/integration/constructs-examples.test.ts) compares
// against these files.
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { EXAMPLES, snapshotPath, synthExample } from "../test/support/example-snapshots.js";

for (const name of EXAMPLES) {
  await writeFile(snapshotPath(name), `${JSON.stringify(await synthExample(name), null, 2)}\n`);
  console.log(`examples/${name}/snapshot.json`);
}
// In the repository's JSON style, so `biome check` passes on them.
execFileSync("npx", ["biome", "format", "--write", ...EXAMPLES.map(snapshotPath)], { stdio: "ignore" });
