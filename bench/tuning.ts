// `npm run bench:tuning`: what io_profile and io_priority change, measured with fio's nbd engine on repl=2 volumes of
// a 2-node dev cluster (127.0.110.x), all attached on node1. Profiles are compared on twin volumes that differ only
// in the key, run alternately in every round, so the machine's drift hits both alike. Writes
// bench/results/tuning.{json,md}.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DevCluster } from "../test/support/dev-cluster.js";
import { saveResults } from "./report.js";
import { backgroundCores, killAllChildren, measureCpu, run } from "./system.js";

/** Every timed job runs this many rounds per volume; the median is reported (one 6 s run swings by 2x here). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RUNTIME_SECONDS = 6;
const RAMP_SECONDS = 1;
const REGION = "512m";
const NET = "127.0.110";

const log = (message: string) => console.error(`[bench:tuning] ${message}`);

/** What one fio run measured, summed over its jobs (group reporting). */
interface Measured {
  iops: number;
  mbps: number;
  meanLatencyUs: number;
  p99LatencyUs: number;
  /** Cores the hypervisor stole, and the whole machine was busy, during the run. */
  stealCores: number;
  busyCores: number;
}

/** A job's median run, and every run's figure (IOPS or MB/s, by the job's metric). */
type Median = Measured & { rounds: number[] };

interface Job {
  id: string;
  title: string;
  /** fio arguments beyond the engine, size and timing. */
  args: string[];
  metric: "iops" | "mbps";
  side: "read" | "write";
}

const SEQ_READS: Job[] = [1, 8].map((qd) => ({
  id: `read-128k-qd${qd}`,
  title: `128k seq read QD${qd}`,
  args: ["--rw=read", "--bs=128k", `--iodepth=${qd}`, "--numjobs=1"],
  metric: "mbps",
  side: "read",
}));

/** Eight sessions each writing 4 KiB and fsyncing after every write: a database's commit pattern. */
const FSYNC_WRITES: Job = {
  id: "randwrite-4k-fsync-8jobs",
  title: "4k randwrite, fsync after each, 8 jobs QD1",
  args: ["--rw=randwrite", "--bs=4k", "--iodepth=1", "--numjobs=8", "--fsync=1"],
  metric: "iops",
  side: "write",
};

/**
 * Two clients of 2x32 requests each: 128 in flight against the node's 32 slots, so the shares decide. Writes, not
 * reads: a repl=2 write stays in flight for the other replica's round trip, while a page-cache read completes on the
 * event loop before the next request is even parsed, so reads never fill the slots (the first run measured 1.01).
 */
const CONTENDED_WRITES: Job = {
  id: "randwrite-4k-qd32-2jobs",
  title: "4k randwrite QD32 x 2 jobs, two volumes at once",
  args: ["--rw=randwrite", "--bs=4k", "--iodepth=32", "--numjobs=2"],
  metric: "iops",
  side: "write",
};

interface FioDirection {
  iops: number;
  bw_bytes: number;
  io_bytes: number;
  lat_ns: { mean: number; percentile?: Record<string, number> };
}

async function fio(job: Job, uri: string, work: string, name: string): Promise<Measured> {
  const output = join(work, `fio-${name}-${job.id}.json`);
  const { result, cpu } = await measureCpu(undefined, () =>
    run(
      "fio",
      [
        `--name=${job.id}`,
        "--ioengine=nbd",
        `--uri=${uri}`,
        ...job.args,
        `--size=${REGION}`,
        "--thread",
        "--group_reporting",
        "--lat_percentiles=1",
        "--time_based",
        `--runtime=${RUNTIME_SECONDS}`,
        `--ramp_time=${RAMP_SECONDS}`,
        "--output-format=json",
        // To a file: the nbd engine prints "connected to NBD server" on stdout, which would break the JSON.
        `--output=${output}`,
      ],
      { cwd: work },
    ).then(() => readFile(output, "utf8")),
  );
  const parsed = JSON.parse(result.slice(result.indexOf("{"))) as {
    jobs?: Array<{ error: number; read: FioDirection; write: FioDirection }>;
  };
  const out = parsed.jobs?.[0];
  if (!out) throw new Error(`fio ${job.id} on ${name}: no job in the output`);
  if (out.error !== 0) throw new Error(`fio ${job.id} on ${name}: the job failed with error ${out.error}`);
  const side = out[job.side];
  if (side.io_bytes === 0) throw new Error(`fio ${job.id} on ${name}: no I/O completed`);
  return {
    iops: side.iops,
    mbps: side.bw_bytes / 1e6,
    meanLatencyUs: side.lat_ns.mean / 1000,
    p99LatencyUs: (side.lat_ns.percentile?.["99.000000"] ?? Number.NaN) / 1000,
    stealCores: cpu.stealCores,
    busyCores: cpu.machineBusyCores,
  };
}

function median(job: Job, runs: Measured[]): Median {
  const sorted = [...runs].sort((a, b) => a[job.metric] - b[job.metric]);
  return {
    ...(sorted[Math.floor(sorted.length / 2)] as Measured),
    rounds: runs.map((r) => Math.round(r[job.metric])),
  };
}

/** A repl=2 volume on both nodes, attached on node1 and written once, so reads find data; its NBD URI. */
async function volume(cluster: DevCluster, name: string, keys: string, work: string): Promise<string> {
  await cluster.json(["volume", "create", `name=${name},size=1G,repl=2,fs=none,nodes=node1;node2,${keys}`]);
  await cluster.json(["volume", "attach", name], "node1");
  const uri = `nbd+unix:///${name}?socket=${cluster.nbdSocket("node1", name)}`;
  const fill = ["--ioengine=nbd", `--uri=${uri}`, "--rw=write", "--bs=1M", "--iodepth=8", `--size=${REGION}`];
  await run("fio", ["--name=fill", ...fill, "--thread", "--output-format=json"], { cwd: work });
  return uri;
}

/** Runs `job` on each volume in turn, ROUNDS times (alternating), and returns each volume's median. */
async function alternate(
  job: Job,
  uris: Record<string, string>,
  work: string,
): Promise<Record<string, Median>> {
  const runs: Record<string, Measured[]> = Object.fromEntries(Object.keys(uris).map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, uri] of Object.entries(uris)) {
      await run("sync", []);
      runs[name]?.push(await fio(job, uri, work, name));
    }
  }
  return Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, median(job, r)]));
}

/** Both volumes at once, ROUNDS times; each round's ratio of the first's IOPS to the second's. */
async function contend(
  job: Job,
  [a, b]: [string, string],
  uris: Record<string, string>,
  work: string,
): Promise<{ ratio: number; ratios: number[]; first: Median; second: Median }> {
  const first: Measured[] = [];
  const second: Measured[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await run("sync", []);
    const [x, y] = await Promise.all([
      fio(job, uris[a] as string, work, a),
      fio(job, uris[b] as string, work, b),
    ]);
    first.push(x);
    second.push(y);
  }
  const ratios = first.map((x, i) => x.iops / (second[i] as Measured).iops);
  const ratio = [...ratios].sort((p, q) => p - q)[Math.floor(ratios.length / 2)] as number;
  return { ratio, ratios, first: median(job, first), second: median(job, second) };
}

interface Results {
  date: string;
  cores: number;
  loadBefore: string[];
  backgroundCores: number;
  sequential: Record<string, Record<string, Median>>;
  fsync: Record<string, Median>;
  priority: {
    highLow: Awaited<ReturnType<typeof contend>>;
    mediumMedium: Awaited<ReturnType<typeof contend>>;
  };
}

const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;

function markdown(r: Results): string {
  const stolen = Math.max(
    ...Object.values(r.sequential).flatMap((m) => Object.values(m).map((x) => x.stealCores)),
    ...Object.values(r.fsync).map((x) => x.stealCores),
    r.priority.highLow.first.stealCores,
    r.priority.mediumMedium.first.stealCores,
  );
  const noisy = r.backgroundCores > 0.2 || stolen > 0.1;
  const seqRows = SEQ_READS.map((job) => {
    const s = r.sequential[job.id]?.sequential as Median;
    const x = r.sequential[job.id]?.random as Median;
    return `| ${job.title} | ${s.mbps.toFixed(0)} MB/s (${s.rounds.join(", ")}) | ${x.mbps.toFixed(0)} MB/s (${x.rounds.join(", ")}) | ${pct(s.mbps, x.mbps)} | ${s.meanLatencyUs.toFixed(0)} / ${x.meanLatencyUs.toFixed(0)} µs |`;
  });
  const db = r.fsync.db as Median;
  const random = r.fsync.random as Median;
  const { highLow, mediumMedium } = r.priority;
  const ratios = (c: typeof highLow) => c.ratios.map((x) => x.toFixed(2)).join(", ");
  return [
    "# io_profile and io_priority (one machine, one disk, same run)",
    "",
    `${r.date}, ${r.cores} cores, load average before the run ${r.loadBefore.join(" ")}, background load ${r.backgroundCores.toFixed(2)} cores,`,
    `at most ${stolen.toFixed(2)} cores stolen by the hypervisor during a job${noisy ? " — **noisy run**: rerun on a quiet machine before drawing conclusions" : ""}.`,
    `Volumes: repl=2 on a 2-node dev cluster on this one machine, attached on node1, first ${REGION} written once.`,
    `Each job ran ${ROUNDS} rounds per volume, the volumes alternating within a round; tables show the median, every`,
    "round's figure in parentheses. fio's nbd engine on the volume's unix socket, 6 s after 1 s ramp.",
    "",
    "## Sequential reads: io_profile=sequential (read-ahead) vs random",
    "",
    "| job | sequential | random | sequential / random | mean latency (seq / random) |",
    "|---|---|---|---|---|",
    ...seqRows,
    "",
    "## fsync-heavy writes: io_profile=db (flush group commit) vs random",
    "",
    "| job | db | random | db / random | mean latency (db / random) |",
    "|---|---|---|---|---|",
    `| ${FSYNC_WRITES.title} | ${Math.round(db.iops)} IOPS (${db.rounds.join(", ")}) | ${Math.round(random.iops)} IOPS (${random.rounds.join(", ")}) | ${pct(db.iops, random.iops)} | ${db.meanLatencyUs.toFixed(0)} / ${random.meanLatencyUs.toFixed(0)} µs |`,
    "",
    "## Priority: two volumes at once",
    "",
    `${CONTENDED_WRITES.title}; the ratio is the first volume's IOPS over the second's, median of the rounds.`,
    "",
    "| pair | first | second | ratio (rounds) |",
    "|---|---|---|---|",
    `| high vs low | ${Math.round(highLow.first.iops)} IOPS | ${Math.round(highLow.second.iops)} IOPS | ${highLow.ratio.toFixed(2)} (${ratios(highLow)}) |`,
    `| medium vs medium (control) | ${Math.round(mediumMedium.first.iops)} IOPS | ${Math.round(mediumMedium.second.iops)} IOPS | ${mediumMedium.ratio.toFixed(2)} (${ratios(mediumMedium)}) |`,
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const loadBefore = loadavg().map((l) => l.toFixed(2));
  const work = await mkdtemp(join(tmpdir(), "hftune-"));
  let cluster: DevCluster | undefined;
  try {
    const background = await backgroundCores();
    cluster = await DevCluster.start(NET, ["--nodes", "2"]);
    log("sequential reads");
    const seqUris = {
      sequential: await volume(cluster, "sq-seq", "io_profile=sequential", work),
      random: await volume(cluster, "sq-rnd", "io_profile=random", work),
    };
    const sequential: Results["sequential"] = {};
    for (const job of SEQ_READS) sequential[job.id] = await alternate(job, seqUris, work);
    log("fsync-heavy writes");
    const fsUris = {
      db: await volume(cluster, "fs-db", "io_profile=db", work),
      random: await volume(cluster, "fs-rnd", "io_profile=random", work),
    };
    const fsync = await alternate(FSYNC_WRITES, fsUris, work);
    for (const name of ["sq-seq", "sq-rnd", "fs-db", "fs-rnd"]) {
      await cluster.json(["volume", "detach", name], "node1");
    }
    log("priority");
    const prUris = {
      high: await volume(cluster, "pr-high", "io_priority=high,io_profile=random", work),
      low: await volume(cluster, "pr-low", "io_priority=low,io_profile=random", work),
      m1: await volume(cluster, "pr-m1", "io_priority=medium,io_profile=random", work),
      m2: await volume(cluster, "pr-m2", "io_priority=medium,io_profile=random", work),
    };
    const highLow = await contend(CONTENDED_WRITES, ["high", "low"], prUris, work);
    const mediumMedium = await contend(CONTENDED_WRITES, ["m1", "m2"], prUris, work);
    const results: Results = {
      date: new Date().toISOString(),
      cores: cpus().length,
      loadBefore,
      backgroundCores: background,
      sequential,
      fsync,
      priority: { highLow, mediumMedium },
    };
    const md = markdown(results);
    await saveResults("tuning", results, md);
    console.log(md);
  } finally {
    await cluster?.down();
    killAllChildren();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
