import { execFile } from "node:child_process";
import { appendFile, copyFile, cp, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";

// The arrow rules (.dependency-cruiser.cjs) are regexes over paths: one that stops matching after a folder is renamed
// passes everything. So crossings are planted in a copy of the sources, and the same check `npm run lint` runs must
// refuse each one, naming the file and the rule.

const root = join(import.meta.dirname, "../..");
const CRUISED = ["agent/src", "providers", "constructs"];

/** A copy of what the arrow check reads (the sources, the JSON they import, its config), node_modules linked. */
async function sourceCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "holdfast-arrows-"));
  for (const folder of CRUISED) {
    await cp(join(root, folder), join(dir, folder), {
      recursive: true,
      filter: (src) => !src.includes("node_modules") && (!/\.[a-z]+$/.test(src) || /\.(ts|json)$/.test(src)),
    });
  }
  await copyFile(join(root, "package.json"), join(dir, "package.json"));
  await copyFile(join(root, ".dependency-cruiser.cjs"), join(dir, ".dependency-cruiser.cjs"));
  await symlink(await realpath(join(root, "node_modules")), join(dir, "node_modules"));
  return dir;
}

/** `npm run lint:arrows` in `dir`: its exit code and what it printed. */
async function arrowCheck(dir: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)("npm", ["run", "--silent", "lint:arrows"], {
      cwd: dir,
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/** Each planted import, the file it goes in, and the rule that must name it (a folder cycle names the folder). */
const PLANTS = [
  { file: "agent/src/engine/engine.ts", line: 'import "../cli/program.js";', rule: "below-imports-edge" },
  {
    file: "agent/src/engine/write-order.ts",
    line: 'import "../nowhere/index.js";',
    rule: "no-unresolved-relative",
  },
  { file: "agent/src/replica/layout.ts", line: 'import "../engine/index.js";', rule: "engine-is-above" },
  {
    file: "agent/src/volume-spec/size.ts",
    line: 'import "../config/index.js";',
    rule: "leaf-imports-only-errors",
  },
  {
    file: "providers/src/client.ts",
    line: 'import "../../agent/src/volume-spec/keys.js";',
    rule: "iac-uses-public-faces",
  },
  {
    file: "agent/src/cluster/placement.ts",
    line: 'import "../volumes/records.js";',
    rule: "folders-meet-at-faces",
  },
  {
    file: "agent/src/meta/store.ts",
    line: 'import "../cluster/index.js";',
    rule: "no-folder-cycles",
    names: "agent/src/meta →",
  },
];

let clean: string;
let planted: string;

test.before(async () => {
  [clean, planted] = await Promise.all([sourceCopy(), sourceCopy()]);
  for (const p of PLANTS) await appendFile(join(planted, p.file), `${p.line}\n`);
});

test.after(async () => {
  await Promise.all([clean, planted].map((dir) => rm(dir, { recursive: true, force: true })));
});

test("the sources as they are pass the arrow check; each planted crossing fails it by file and rule", async () => {
  const [asTheyAre, crossed] = await Promise.all([arrowCheck(clean), arrowCheck(planted)]);
  assert.is(asTheyAre.code, 0, asTheyAre.output);
  assert.is.not(crossed.code, 0, crossed.output);
  for (const p of PLANTS) {
    const names = p.names ?? p.file;
    const named = crossed.output.split("\n").some((l) => l.includes(`error ${p.rule}: ${names}`));
    assert.ok(named, `expected "${p.rule}" to name ${names}:\n${crossed.output}`);
  }
});

test.run();
