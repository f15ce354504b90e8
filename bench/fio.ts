import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./system.js";

/** One fio job, run alone against one target. */
export interface FioJob {
  id: string;
  title: string;
  rw: "randwrite" | "randread" | "write";
  bs: "4k" | "1M";
  iodepth: number;
  /** What the job is judged by: small blocks by IOPS, large ones by bandwidth. */
  metric: "iops" | "bandwidth";
  /** Timed jobs run for RUNTIME after RAMP; the preconditioning pass writes the region once instead. */
  timed: boolean;
}

/** The region every job works on; fio's `size`. */
export const REGION = "1g";
export const RUNTIME_SECONDS = 6;
export const RAMP_SECONDS = 1;

/**
 * Writes the whole region once before the timed jobs, so reads find data (not holes a server can answer
 * without touching the disk) and every target starts the timed jobs from the same allocated state.
 */
export const PRECONDITION: FioJob = {
  id: "precondition",
  title: "precondition: 1M seq write of the region",
  rw: "write",
  bs: "1M",
  iodepth: 8,
  metric: "bandwidth",
  timed: false,
};

/** A timed job; small blocks are judged by IOPS, large ones by bandwidth. */
function timedJob(title: string, rw: FioJob["rw"], bs: FioJob["bs"], iodepth: number): FioJob {
  const id = `${rw}-${bs.toLowerCase()}-qd${iodepth}`;
  return { id, title, rw, bs, iodepth, metric: bs === "4k" ? "iops" : "bandwidth", timed: true };
}

export const JOBS: FioJob[] = [
  timedJob("4k randwrite QD16", "randwrite", "4k", 16),
  timedJob("4k randwrite QD1", "randwrite", "4k", 1),
  timedJob("4k randread QD16", "randread", "4k", 16),
  timedJob("4k randread QD1", "randread", "4k", 1),
  timedJob("1M seq write QD8", "write", "1M", 8),
];

/** What one fio job measured. */
export interface FioResult {
  iops: number;
  /** Bandwidth in MB/s (10^6 bytes per second). */
  mbps: number;
  /** Total latency (submission to completion) as fio reports it, in µs. */
  meanLatencyUs: number;
  p99LatencyUs: number;
  /** fio's own CPU (user + system) over the job, in cores. */
  fioCores: number;
}

/** Runs `job` with the target's engine arguments; `workDir` holds fio's output (and any state files). */
export async function runFio(job: FioJob, engineArgs: string[], workDir: string): Promise<FioResult> {
  const output = join(workDir, `fio-${job.id}.json`);
  const args = [
    `--name=${job.id}`,
    ...engineArgs,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    `--size=${REGION}`,
    "--numjobs=1",
    // The job runs as a thread of fio's own process, so killing fio (on failure or Ctrl-C) stops it too.
    "--thread",
    // Percentiles of total latency, so the mean and the p99 describe the same quantity.
    "--lat_percentiles=1",
    "--output-format=json",
    // To a file: the nbd engine prints "connected to NBD server" on stdout, which would break the JSON.
    `--output=${output}`,
    ...(job.timed ? ["--time_based", `--runtime=${RUNTIME_SECONDS}`, `--ramp_time=${RAMP_SECONDS}`] : []),
  ];
  // fio leaves files (verify state, layout) in its working directory: keep them out of the checkout.
  await run("fio", args, { cwd: workDir });
  return parseFioOutput(job, await readFile(output, "utf8"));
}

interface FioDirection {
  iops: number;
  bw_bytes: number;
  io_bytes: number;
  lat_ns: { mean: number; percentile?: Record<string, number> };
}

interface FioJobOutput {
  error: number;
  usr_cpu: number;
  sys_cpu: number;
  read: FioDirection;
  write: FioDirection;
}

function parseFioOutput(job: FioJob, text: string): FioResult {
  // Whatever fio prints before the JSON document (warnings) is not part of it.
  const parsed = JSON.parse(text.slice(text.indexOf("{"))) as { jobs?: FioJobOutput[] };
  const out = parsed.jobs?.[0];
  if (!out) throw new Error(`fio ${job.id}: no job in the output`);
  if (out.error !== 0) throw new Error(`fio ${job.id}: the job failed with error ${out.error}`);
  const side = job.rw.includes("read") ? out.read : out.write;
  if (side.io_bytes === 0) throw new Error(`fio ${job.id}: no I/O completed`);
  const p99 = side.lat_ns.percentile?.["99.000000"];
  if (p99 === undefined) throw new Error(`fio ${job.id}: no 99th percentile latency in the output`);
  return {
    iops: side.iops,
    mbps: side.bw_bytes / 1e6,
    meanLatencyUs: side.lat_ns.mean / 1000,
    p99LatencyUs: p99 / 1000,
    fioCores: (out.usr_cpu + out.sys_cpu) / 100,
  };
}
