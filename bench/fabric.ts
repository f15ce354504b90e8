// `npm run bench:fabric` (also run by `npm run bench`): replication measured in one run on one machine.
// fio against a local file, nbdkit's memory plugin and Holdfast volumes with 1, 2 and 3 replicas on a 3-node dev
// cluster (all on this one disk); then the time from killing the attached node to the first I/O on another node,
// and resync throughput. Writes bench/results/fabric.{json,md}.

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DevCluster } from "../test/support/dev-cluster.js";
import { NBD, RawNbdClient } from "../test/support/nbd-client.js";
import { JOBS as ALL_JOBS, type FioJob, type FioResult, PRECONDITION, runFio } from "./fio.js";
import { saveResults } from "./report.js";
import { killAllChildren } from "./system.js";
import { localFileTarget, nbdkitTarget } from "./targets.js";

const exec = promisify(execFile);
/** The write jobs of bench/run.ts: replication changes what writes cost, not reads. */
const JOBS: FioJob[] = ALL_JOBS.filter((j) =>
  ["randwrite-4k-qd16", "randwrite-4k-qd1", "write-1m-qd8"].includes(j.id),
);
/** Each timed job runs this many times per target, and the median run is reported: one 6 s run swings by 2x here. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** A job's median run, with what every run measured (IOPS or MB/s, by the job's metric). */
type JobResult = FioResult & { rounds: number[] };
type Results = Record<string, Record<string, JobResult>>;

const measure = (job: FioJob, r: FioResult) => (job.metric === "iops" ? r.iops : r.mbps);

const log = (message: string) => console.error(`[bench:fabric] ${message}`);

async function fioAll(engineArgs: string[], work: string): Promise<Record<string, JobResult>> {
  const out: Record<string, JobResult> = {};
  await runFio(PRECONDITION, engineArgs, work);
  for (const job of JOBS) {
    const runs: FioResult[] = [];
    for (let i = 0; i < ROUNDS; i++) runs.push(await runFio(job, engineArgs, work));
    runs.sort((a, b) => measure(job, a) - measure(job, b));
    const median = runs[Math.floor(runs.length / 2)] as FioResult;
    out[job.id] = { ...median, rounds: runs.map((r) => Math.round(measure(job, r))) };
  }
  return out;
}

/** Seconds from SIGKILL of the attached node to the first completed read on the node that takes over. */
async function failover(cluster: DevCluster): Promise<{ seconds: number; leaseTtl: number }> {
  await cluster.json(["volume", "create", "name=fo,size=256M,repl=3,nodes=node1;node2;node3"]);
  await cluster.json(["volume", "attach", "fo"], "node1");
  const killedAt = Date.now();
  await cluster.stop("node1");
  for (;;) {
    const r = await cluster.hf(["volume", "attach", "fo"], "node2");
    if (r.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { client } = await RawNbdClient.open(cluster.nbdSocket("node2", "fo"), "fo");
  const reply = await client.request({ type: NBD.CMD_READ, cookie: 1n, offset: 0, length: 4096 });
  client.close();
  if (reply.error !== 0) throw new Error(`read after failover failed: ${reply.error}`);
  const seconds = (Date.now() - killedAt) / 1000;
  await cluster.startNode("node1");
  return { seconds, leaseTtl: 5 };
}

/** Resync of a replica that missed 512 MiB of writes: regions copied per second, from the engine's own log. */
async function resync(
  cluster: DevCluster,
  work: string,
): Promise<{ mibPerSecond: number; regions: number; ms: number }> {
  await cluster.json(["volume", "create", "name=rs,size=1G,repl=3,nodes=node1;node2;node3"]);
  await cluster.json(["volume", "attach", "rs"], "node2");
  const uri = `--uri=nbd+unix:///rs?socket=${cluster.nbdSocket("node2", "rs")}`;
  const write = ["--ioengine=nbd", uri, "--rw=write", "--bs=1M", "--iodepth=8", "--size=512M", "--thread"];
  await exec("fio", ["--name=fill", ...write], { cwd: work });
  await cluster.stop("node3");
  await exec("fio", ["--name=miss", ...write], { cwd: work });
  await cluster.startNode("node3");
  for (;;) {
    const text = await readFile(join(cluster.dir, "node2", "agent.log"), "utf8");
    const line = text.split("\n").find((l) => l.includes('"volume":"rs"') && l.includes("replica resynced"));
    if (line) {
      const { copied, ms } = JSON.parse(line) as { copied: number; ms: number };
      return { mibPerSecond: (copied * 4) / (ms / 1000), regions: copied, ms };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function markdown(
  results: Results,
  fo: { seconds: number },
  rs: { mibPerSecond: number; regions: number; ms: number },
  before: string[],
): string {
  const targets = Object.keys(results);
  const rows = JOBS.map((job) => {
    const cells = targets.map((t) => {
      const r = results[t]?.[job.id] as JobResult;
      return job.metric === "iops"
        ? `${Math.round(r.iops)} IOPS (${Math.round(r.meanLatencyUs)} µs)`
        : `${r.mbps.toFixed(0)} MB/s`;
    });
    return `| ${job.title} | ${cells.join(" | ")} |`;
  });
  const local = results.local?.["randwrite-4k-qd16"]?.iops ?? 1;
  const r1 = results["repl=1"]?.["write-1m-qd8"]?.mbps ?? 1;
  const r3 = results["repl=3"]?.["write-1m-qd8"]?.mbps ?? 0;
  const r3iops = results["repl=3"]?.["randwrite-4k-qd16"]?.iops ?? 0;
  const runs = (target: string, job: string) => results[target]?.[job]?.rounds.join(", ");
  return [
    "# Replication benchmark (one machine, one disk, same run)",
    "",
    `${new Date().toISOString()}, ${cpus().length} cores, load average before the run ${before.join(" ")}. Each timed job ran`,
    `${ROUNDS} times per target; the table shows the median run. All runs of the jobs the targets use:`,
    `local 4k QD16 ${runs("local", "randwrite-4k-qd16")} IOPS; repl=3 4k QD16 ${runs("repl=3", "randwrite-4k-qd16")} IOPS;`,
    `repl=1 1M ${runs("repl=1", "write-1m-qd8")} MB/s; repl=3 1M ${runs("repl=3", "write-1m-qd8")} MB/s.`,
    "",
    `| job | ${targets.join(" | ")} |`,
    `|---|${targets.map(() => "---").join("|")}|`,
    ...rows,
    "",
    `- repl=3 1M write bandwidth: ${r3.toFixed(0)} MB/s, ${((100 * r3) / (r1 / 3)).toFixed(0)}% of the one-disk limit (a third of repl=1's ${r1.toFixed(0)} MB/s).`,
    `- repl=3 4k randwrite QD16: ${Math.round(r3iops)} IOPS, ${((100 * r3iops) / local).toFixed(1)}% of the local file's ${Math.round(local)}.`,
    `- failover (SIGKILL of the attached node to the first read on the new node, lease TTL 5 s): ${fo.seconds.toFixed(1)} s.`,
    `- resync of ${rs.regions} missed 4 MiB regions: ${rs.mibPerSecond.toFixed(0)} MiB/s (${rs.ms} ms).`,
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const before = loadavg().map((l) => l.toFixed(2));
  const work = await mkdtemp(join(tmpdir(), "hffab-"));
  let cluster: DevCluster | undefined;
  try {
    const results: Results = {};
    log("local file");
    results.local = await fioAll(localFileTarget(work).engineArgs, work);
    log("nbdkit memory");
    const memory = await nbdkitTarget(work, "memory");
    results["nbdkit-memory"] = await fioAll(memory.engineArgs, work);
    await memory.stop();
    cluster = await DevCluster.start("127.0.9", ["--nodes", "3"]);
    for (const repl of [1, 2, 3]) {
      log(`repl=${repl}`);
      const name = `r${repl}`;
      // Pinned so that node1, where it is attached, holds one replica (repl=1 is then local, as in bench/run.ts).
      const nodes = ["node1", "node2", "node3"].slice(0, repl).join(";");
      await cluster.json(["volume", "create", `name=${name},size=2G,repl=${repl},nodes=${nodes}`]);
      await cluster.json(["volume", "attach", name], "node1");
      const uri = `--uri=nbd+unix:///${name}?socket=${cluster.nbdSocket("node1", name)}`;
      results[`repl=${repl}`] = await fioAll(["--ioengine=nbd", uri], work);
      await cluster.json(["volume", "detach", name], "node1");
    }
    log("failover");
    const fo = await failover(cluster);
    log("resync");
    const rs = await resync(cluster, work);
    const md = markdown(results, fo, rs, before);
    const raw = { date: new Date().toISOString(), loadBefore: before, results, failover: fo, resync: rs };
    await saveResults("fabric", raw, md);
    console.log(md);
  } finally {
    await cluster?.down();
    killAllChildren();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
