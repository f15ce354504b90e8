#!/usr/bin/env node
// Runs every uvu test file in its own Node process (a file's agents, mounts and sockets die with it), two files
// at a time by default (HOLDFAST_TEST_JOBS): most of a file's time is spent waiting on agents, etcd, fio and
// terraform, and each file that starts a dev cluster has its own loopback /24. A file's output is printed whole when
// it ends. Then one closing line, "N passed, N failed", from uvu's own totals.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["test"];
const fileTimeoutMs = Number(process.env.HOLDFAST_TEST_FILE_TIMEOUT_MS ?? 300_000);
const jobs = Math.max(1, Number(process.env.HOLDFAST_TEST_JOBS ?? 2));
/** Loaded ahead of each file: prints an error thrown in a before/after hook, which uvu would swallow. */
const HOOK_ERRORS = new URL("../test/support/hook-errors.ts", import.meta.url).href;

function findTests(path) {
  if (statSync(path).isFile()) return path.endsWith(".test.ts") ? [path] : [];
  return readdirSync(path)
    .sort()
    .flatMap((name) => findTests(join(path, name)));
}

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--import", "tsx", "--import", HOOK_ERRORS, file], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
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
      resolve({ file, out, passed, failed, skipped, timedOut, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const files = roots.flatMap(findTests);
const results = [];
let next = 0;
async function worker() {
  while (next < files.length) {
    const file = files[next++];
    const name = relative(process.cwd(), file);
    const result = await runFile(file);
    console.log(`\n# ${name}\n${result.out}`);
    results.push(result);
  }
}
await Promise.all(Array.from({ length: jobs }, worker));
results.sort((a, b) => a.file.localeCompare(b.file));
console.log("\n# summary");
for (const r of results) {
  const mark = r.failed > 0 ? "FAIL" : "ok  ";
  const note = r.timedOut ? " [hung: killed after the file time limit]" : "";
  console.log(`${mark} ${r.file}  ${r.passed} passed, ${r.failed} failed (${r.seconds.toFixed(1)} s)${note}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const skipped = results.reduce((n, r) => n + r.skipped, 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
