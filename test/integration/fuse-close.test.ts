// Closing a FUSE-backed volume ends, whatever is in flight (issue 11, defect 13). Real FUSE, loop devices, mkfs
// and mount (as root). This process serves the FUSE files, so every access to a mounted volume or a loop device
// runs in a child process (docs/decisions/0003).
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readMounts } from "../../agent/src/frontend/filesystem.js";
import { cleanupStale, exposeVolume } from "../../agent/src/frontend/index.js";
import { listLoops } from "../../agent/src/frontend/loop.js";
import { runStatus } from "../../agent/src/frontend/run.js";
import { MemoryDevice } from "../support/memory-device.js";

const MiB = 1024 * 1024;
const dirs: string[] = [];

async function workDir(): Promise<{ dir: string; fuseDir: string; target: string }> {
  const dir = await mkdtemp(join(tmpdir(), "holdfast-fc-"));
  dirs.push(dir);
  return { dir, fuseDir: join(dir, "fuse"), target: join(dir, "mnt") };
}

/** Loop devices backed by files under `dir`, and mounts under it or from those loop devices. */
async function leftovers(dir: string): Promise<string[]> {
  const loops = (await listLoops()).filter((l) => l.backFile.startsWith(`${dir}/`)).map((l) => l.name);
  const mounts = (await readMounts())
    .filter((m) => m.mountPoint.startsWith(`${dir}/`) || loops.includes(m.source))
    .map((m) => `${m.fsType} on ${m.mountPoint}`);
  return [...loops, ...mounts];
}

/** `work`, or a failure naming `what` if it has not settled after `ms`: a hang fails the test, not the run. */
async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function fuseDescriptors(pid: number | "self"): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")));
  return fds.filter((_, i) => targets[i] === "/dev/fuse");
}

test.after(async () => {
  for (const dir of dirs) {
    await cleanupStale(join(dir, "fuse")).catch((err) => console.error(err));
    if ((await leftovers(dir)).length === 0) await rm(dir, { recursive: true, force: true });
  }
});

test("a command the agent runs holds no descriptor on /dev/fuse", async () => {
  const { fuseDir } = await workDir();
  const volume = await exposeVolume({
    name: "vol-fd",
    device: new MemoryDevice(64 * MiB),
    fuseDir,
    fs: "none",
  });
  try {
    assert.ok((await fuseDescriptors("self")).length > 0, "this process serves the FUSE file");
    const { stdout } = await runStatus("sh", ["-c", "ls -l /proc/$$/fd"]);
    assert.not.match(stdout, /\/dev\/fuse/);
  } finally {
    await volume.close();
  }
  assert.equal(await leftovers(fuseDir), []);
});

test("cleanupStale ends when a command the SIGKILLed agent started outlives it", async () => {
  const { dir, fuseDir, target } = await workDir();
  const pidFile = join(dir, "orphan.pid");
  const script = fileURLToPath(new URL("../support/host-volume-crash-child.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, fuseDir, target, pidFile], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let orphan: number | undefined;
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
        child.once("exit", (code) => reject(new Error(`the child exited (${code}) before it was ready`)));
      }),
      60_000,
      "the crash child",
    );
    orphan = Number(await readFile(pidFile, "utf8"));
    child.kill("SIGKILL");
    await exited;
    // The orphan, still running, must not keep the dead agent's FUSE connection up with no one to answer it.
    assert.equal(await fuseDescriptors(orphan), []);
    await within(cleanupStale(fuseDir), 15_000, "cleanupStale");
    assert.equal(await leftovers(fuseDir), []);
  } finally {
    child.kill("SIGKILL");
    if (orphan) process.kill(orphan, "SIGKILL");
  }
});

test.run();
