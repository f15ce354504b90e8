import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";

/** Every child this run started and that has not exited: killed on the way out, however the run ends. */
const children = new Set<ChildProcess>();

/** Spawns a child (stdout and stderr piped) that `killAllChildren` will find. */
export function spawnTracked(cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  children.add(child);
  child.once("exit", () => children.delete(child));
  // A command that cannot start emits "error" and no "exit"; without a listener that would crash the run.
  child.once("error", () => children.delete(child));
  return child;
}

/** SIGKILLs every child still running. Synchronous, so it also works from a process "exit" handler. */
export function killAllChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

/** Resolves with the child's exit code (or the signal that ended it), rejects if it could not start. */
export function exitOf(child: ChildProcess): Promise<number | NodeJS.Signals> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve, reject) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
    child.once("error", reject);
  });
}

/** Runs a command to completion and returns its stdout; throws with its stderr when it fails. */
export async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const child = spawnTracked(cmd, args, options);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  let status: number | NodeJS.Signals;
  try {
    status = await exitOf(child);
  } catch (err) {
    throw new Error(`${cmd} could not start: ${(err as Error).message}`);
  }
  if (status !== 0) {
    const output = (stderr.trim() || stdout.trim() || "no output").split("\n").slice(-20).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (${status}):\n${output}`);
  }
  return stdout;
}

let clockTicks: Promise<number> | undefined;
/** The unit of /proc's CPU times (USER_HZ, almost always 100). */
function clockTicksPerSecond(): Promise<number> {
  clockTicks ??= run("getconf", ["CLK_TCK"]).then((out) => Number(out.trim()) || 100);
  return clockTicks;
}

/**
 * CPU seconds (user + system) of a process: its main thread, and all its threads, exited ones included. Also
 * how long its main thread sat runnable waiting for a core: the direct measure of competition for the CPUs.
 */
async function processCpu(pid: number): Promise<{ main: number; total: number; mainWaiting: number }> {
  const [total, main, schedstat] = await Promise.all([
    threadStatCpu(`/proc/${pid}/stat`),
    threadStatCpu(`/proc/${pid}/task/${pid}/stat`),
    readFile(`/proc/${pid}/task/${pid}/schedstat`, "utf8"),
  ]).catch((err: NodeJS.ErrnoException) => {
    throw err.code === "ENOENT" ? new Error(`the server process ${pid} is gone`) : err;
  });
  // schedstat: nanoseconds on a CPU, nanoseconds waiting on a run queue, time slices.
  const mainWaiting = Number(schedstat.split(" ")[1]) / 1e9;
  return { main, total, mainWaiting };
}

async function threadStatCpu(path: string): Promise<number> {
  const stat = await readFile(path, "utf8");
  // The command name in parentheses may hold spaces; the fields after it are fixed: utime and stime are
  // the 12th and 13th after ")" (fields 14 and 15 of proc(5)).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / (await clockTicksPerSecond());
}

/** Jiffies over every core, from /proc/stat: busy (kernel included), stolen by the hypervisor, and all. */
async function machineCpu(): Promise<{ busy: number; steal: number; total: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + steal + idle + iowait };
}

/** Cores' worth of each counter between two readings. */
function coresBetween(before: { total: number }, after: { total: number }, delta: number): number {
  return (availableParallelism() * delta) / Math.max(1, after.total - before.total);
}

/** How busy the machine is with nothing of the bench's running: other work that will skew the figures. */
export async function backgroundCores(sampleMs = 1000): Promise<number> {
  const before = await machineCpu();
  await new Promise((r) => setTimeout(r, sampleMs));
  const after = await machineCpu();
  return coresBetween(before, after, after.busy - before.busy);
}

/** CPU used while a job ran, in cores (1.0 = one core busy the whole time). */
export interface CpuUse {
  wallSeconds: number;
  /** Every process on the machine, kernel included. */
  machineBusyCores: number;
  /** Time the hypervisor gave our virtual CPUs to someone else: the host's own contention. */
  stealCores: number;
  /** The NBD server's main thread (Holdfast's JavaScript event loop); absent for the local-file target. */
  serverMainCores?: number;
  /** Time the server's main thread was runnable but waiting for a core, in cores (0.4 = 40% of the job). */
  serverMainWaitingCores?: number;
  /** The NBD server's other threads (libuv's file I/O pool, V8's GC helpers; nbdkit's worker threads). */
  serverOtherCores?: number;
}

/** Runs `fn` and measures the CPU the machine and the server process `pid` (when given) spent meanwhile. */
export async function measureCpu<T>(
  pid: number | undefined,
  fn: () => Promise<T>,
): Promise<{ result: T; cpu: CpuUse }> {
  const machineBefore = await machineCpu();
  const serverBefore = pid === undefined ? undefined : await processCpu(pid);
  const started = performance.now();
  const result = await fn();
  const wallSeconds = (performance.now() - started) / 1000;
  const machineAfter = await machineCpu();
  const cpu: CpuUse = {
    wallSeconds,
    machineBusyCores: coresBetween(machineBefore, machineAfter, machineAfter.busy - machineBefore.busy),
    stealCores: coresBetween(machineBefore, machineAfter, machineAfter.steal - machineBefore.steal),
  };
  if (pid !== undefined && serverBefore) {
    const serverAfter = await processCpu(pid);
    cpu.serverMainCores = (serverAfter.main - serverBefore.main) / wallSeconds;
    cpu.serverMainWaitingCores = (serverAfter.mainWaiting - serverBefore.mainWaiting) / wallSeconds;
    cpu.serverOtherCores =
      (serverAfter.total - serverAfter.main - (serverBefore.total - serverBefore.main)) / wallSeconds;
  }
  return { result, cpu };
}
