// `npm run bench`: fio against a local file, nbdkit (file and memory plugins) and a Holdfast volume, all in one
// run on one disk, then the Holdfast jobs again under `node --cpu-prof`. Writes bench/results/latest.{json,md}
// and prints the table. See bench/README.md.

import { rmSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { freePort, ROOT } from "../test/support/agent-process.js";
import { type FioJob, JOBS, PRECONDITION, RAMP_SECONDS, REGION, RUNTIME_SECONDS, runFio } from "./fio.js";
import { summariseProfile } from "./profile.js";
import {
  type BenchResults,
  compare,
  type JobResult,
  type MachineInfo,
  markdown,
  type ProfileRun,
  saveResults,
  throughputTable,
} from "./report.js";
import { backgroundCores, killAllChildren, measureCpu, run } from "./system.js";
import { holdfastTarget, localFileTarget, nbdkitTarget, type Target, type TargetId } from "./targets.js";

const RESULTS_DIR = join(ROOT, "bench/results");
const BUNDLE = join(ROOT, "dist/holdfast.mjs");
/** The jobs profiled: the per-request cost (small writes at depth) and the per-byte cost (large writes). */
const PROFILED_JOBS = ["randwrite-4k-qd16", "write-1m-qd8"];

async function main(): Promise<void> {
  // Short, because NBD unix socket paths must fit in 107 bytes; HOLDFAST_BENCH_DIR picks another disk.
  const work = await mkdtemp(join(process.env.HOLDFAST_BENCH_DIR ?? tmpdir(), "hfbench-"));
  removeOnInterrupt(work);
  try {
    const machine = await machineInfo(work);
    log(`work dir ${work} on ${machine.disk.filesystem} (${machine.disk.type}); ${machine.nproc} cores`);
    const results = {} as BenchResults["results"];
    const background = {} as BenchResults["background"];
    const jobs = [PRECONDITION, ...JOBS];
    // Every agent on this data dir (this one, then the profiled ones) is the same node at the same address.
    const agentDir = join(work, "hf");
    const port = await freePort();
    const targets: [TargetId, () => Promise<Target>][] = [
      ["local", async () => localFileTarget(work)],
      ["nbdkit-file", () => nbdkitTarget(work, "file")],
      ["nbdkit-memory", () => nbdkitTarget(work, "memory")],
      ["holdfast", () => holdfastTarget(agentDir, { create: true, port })],
    ];
    for (const [id, start] of targets) {
      background[id] = await backgroundCores();
      results[id] = await benchTarget(start, jobs, work);
    }
    const profiles = await profileHoldfast(agentDir, port, work);

    const report: BenchResults = {
      date: new Date().toISOString(),
      machine,
      settings: { region: REGION, runtimeSeconds: RUNTIME_SECONDS, rampSeconds: RAMP_SECONDS, jobs: JOBS },
      results,
      background,
      comparisons: compare(JOBS, results),
      profiles,
    };
    await saveResults("latest", report, markdown(report));
    console.log(`\n${throughputTable(report.comparisons)}\n`);
    log("full report in bench/results/latest.md, raw numbers in bench/results/latest.json");
  } finally {
    killAllChildren();
    await rm(work, { recursive: true, force: true });
  }
}

/** Starts a target, runs `jobs` on it in order, and stops it, also when a job fails. */
async function benchTarget(
  start: () => Promise<Target>,
  jobs: FioJob[],
  work: string,
): Promise<Record<string, JobResult>> {
  const target = await start();
  const results: Record<string, JobResult> = {};
  try {
    for (const job of jobs) results[job.id] = await runJob(target, job, work);
  } catch (err) {
    // The job's error is the one to report; a server that died may well fail to stop too.
    await target.stop().catch(() => undefined);
    throw err;
  }
  await target.stop();
  return results;
}

async function runJob(target: Target, job: FioJob, work: string): Promise<JobResult> {
  // Dirty pages a buffered target left behind would otherwise be written back during the next job.
  await run("sync", []);
  // When fio ran, on the clock CPU profiles use, to summarise a profile over the job alone.
  const windowUs: [number, number] = [0, 0];
  const timedFio = async () => {
    windowUs[0] = monotonicUs();
    const result = await runFio(job, target.engineArgs, work);
    windowUs[1] = monotonicUs();
    return result;
  };
  const measured = await measureCpu(target.pid, timedFio).catch((err) => {
    // A server that died explains a failed job better than fio's or /proc's error does.
    target.check();
    throw err;
  });
  target.check();
  const { result, cpu } = measured;
  const figure =
    job.metric === "iops" ? `${Math.round(result.iops)} IOPS` : `${Math.round(result.mbps)} MB/s`;
  log(`${target.id.padEnd(13)} ${job.title.padEnd(42)} ${figure}`);
  return { ...result, cpu, windowUs };
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Runs each profiled job on a fresh agent under `node --cpu-prof` (same data dir, so the volume keeps the
 * data the main run wrote), stops it with SIGTERM so the profile is written, and summarises the profile.
 */
async function profileHoldfast(agentDir: string, port: number, work: string): Promise<ProfileRun[]> {
  const runs: ProfileRun[] = [];
  for (const jobId of PROFILED_JOBS) {
    const job = JOBS.find((j) => j.id === jobId) as FioJob;
    const profileDir = join(work, `profile-${job.id}`);
    const start = () =>
      holdfastTarget(agentDir, {
        create: false,
        port,
        nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`],
        // The last agent leaves nothing behind: the volume is deleted through the CLI, as a user would.
        deleteAtStop: jobId === PROFILED_JOBS.at(-1),
      });
    const fio = (await benchTarget(start, [job], work))[job.id] as JobResult;
    const profileFile = await collectProfile(profileDir, job.id);
    runs.push({
      job: job.id,
      title: job.title,
      fio,
      profileFile: relative(ROOT, profileFile),
      summary: await summariseProfile(profileFile, BUNDLE, fio.windowUs),
    });
  }
  return runs;
}

/** Copies the one profile the agent wrote into bench/results and returns its path there. */
async function collectProfile(profileDir: string, jobId: string): Promise<string> {
  const files = (await readdir(profileDir).catch(() => [])).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${profileDir}, found ${files.length}`);
  const target = join(RESULTS_DIR, `holdfast-${jobId}.cpuprofile`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await copyFile(join(profileDir, files[0] as string), target);
  // Node writes profiles owner-only; these are results like the others.
  await chmod(target, 0o644);
  return target;
}

async function machineInfo(work: string): Promise<MachineInfo> {
  // `df -P -T` prints: Filesystem Type 1024-blocks Used Available Capacity Mounted-on.
  const dfLine = (await run("df", ["-P", "-T", work])).trim().split("\n").at(-1) ?? "";
  const [filesystem = "?", type = "?", , , , , mountedOn = "?"] = dfLine.split(/\s+/);
  // Every target's data lives under the work dir; on tmpfs the "local disk" baseline would be memory.
  if (type === "tmpfs")
    throw new Error(`${work} is on tmpfs: set HOLDFAST_BENCH_DIR to a directory on a disk`);
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    fio: (await run("fio", ["--version"])).trim(),
    nbdkit: (await run("nbdkit", ["--version"])).trim(),
    loadAverage: loadavg(),
    disk: { filesystem, type, mountedOn, workDir: work },
  };
}

/** Ctrl-C or a kill still stops every child (nbdkit, the agent, fio) and removes the work dir. */
function removeOnInterrupt(work: string): void {
  process.on("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAllChildren();
      rmSync(work, { recursive: true, force: true });
      log(`interrupted by ${signal}; cleaned up`);
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1));
    });
  }
}

function log(message: string): void {
  console.error(`bench: ${message}`);
}

try {
  await main();
} catch (err) {
  log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
