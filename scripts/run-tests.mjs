#!/usr/bin/env node
// Runs every uvu test file in its own Node process (a file's agents, mounts and sockets die with it),
// then prints one closing line, "N passed, N failed", from uvu's own totals.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["test"];
const fileTimeoutMs = Number(process.env.HOLDFAST_TEST_FILE_TIMEOUT_MS ?? 240_000);

function findTests(path) {
  if (statSync(path).isFile()) return path.endsWith(".test.ts") ? [path] : [];
  return readdirSync(path)
    .sort()
    .flatMap((name) => findTests(join(path, name)));
}

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      out += `\n${file}: timed out after ${fileTimeoutMs} ms\n`;
      child.kill("SIGKILL");
    }, fileTimeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
      let failed = total - passed - skipped;
      // A file that crashed or hung before uvu printed its totals counts as one failure.
      if ((code !== 0 || signal) && failed === 0) failed = 1;
      resolve({ file, passed, failed, skipped, timedOut, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const files = roots.flatMap(findTests);
const results = [];
for (const file of files) {
  console.log(`\n# ${relative(process.cwd(), file)}`);
  let result = await runFile(file);
  // A file that hung (not one that failed an assertion) runs once more, and the summary says so: a known,
  // rare hang of the FUSE unmount under test (see README, "Known issues") must not hide behind a green line.
  if (result.timedOut) {
    console.log(`\n# ${relative(process.cwd(), file)}: hung, running it once more`);
    result = { ...(await runFile(file)), retried: true };
  }
  results.push(result);
}
console.log("\n# summary");
for (const r of results) {
  const mark = r.failed > 0 ? "FAIL" : "ok  ";
  const note = r.retried ? " [hung once; this is the second run]" : "";
  console.log(`${mark} ${r.file}  ${r.passed} passed, ${r.failed} failed (${r.seconds.toFixed(1)} s)${note}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const skipped = results.reduce((n, r) => n + r.skipped, 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
