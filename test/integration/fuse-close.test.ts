// Closing a FUSE-backed volume ends, whatever is in flight (issue 11, defect 13). Real FUSE, loop devices, mkfs
// and mount (as root). This process serves the FUSE files, so every access to a mounted volume or a loop device
// runs in a child process (docs/decisions/0003).
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OperationError } from "../../agent/src/errors.js";
import { cleanupStale, exposeVolume, readMounts } from "../../agent/src/frontend/index.js";
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

function sh(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("sh", ["-c", script], { encoding: "utf8" }, (err, stdout, stderr) =>
      err ? reject(new Error(`${script}: ${stderr || err.message}`)) : resolve(stdout.trim()),
    );
  });
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

/** A device whose writes and flushes wait, from `hold()` to `release()`, as a replicated device can. */
class HoldingDevice extends MemoryDevice {
  /** Requests that waited. */
  held = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  override async write(offset: number, data: Buffer): Promise<void> {
    await this.wait();
    return super.write(offset, data);
  }

  override async flush(): Promise<void> {
    await this.wait();
    return super.flush();
  }

  private async wait(): Promise<void> {
    if (!this.gate) return;
    this.held++;
    await this.gate;
  }
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

test("close with the device holding a write: volume.timeout, not a hang; once it answers, close ends clean", async () => {
  const { fuseDir, target } = await workDir();
  const device = new HoldingDevice(256 * MiB);
  const volume = await exposeVolume({ name: "vol-held", device, fuseDir, stepTimeoutMs: 1500 });
  await volume.mount(target);
  // In the page cache only: the unmount must write it, and the write reaches the device as FUSE requests.
  await sh(`echo held > ${target}/f`);
  device.hold();
  try {
    const err = await within(
      volume.close().then(
        () => undefined,
        (e: unknown) => e,
      ),
      20_000,
      "close with a write held",
    );
    assert.instance(err, OperationError);
    assert.is((err as OperationError).code, "volume.close");
    // The umount runs out of time, stuck writing through the loop device; the lazy one that follows finds the
    // mount already gone; the loop device stays held by the file system still being written out.
    assert.match((err as Error).message, /still held open/);
    assert.ok(device.held > 0, "a FUSE request was outstanding while close ran");
  } finally {
    device.release();
    // Once the device answers, the same volume closes: a volume left open would keep this process alive.
    await within(volume.close(), 20_000, "close once the device answers");
  }
  assert.equal(await leftovers(fuseDir), []);
});

test("the real close path, 12 times, each with a writer's I/O in flight; every fsynced file reads back", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(256 * MiB);
  let previous = "";
  for (let i = 0; i < 12; i++) {
    const volume = await exposeVolume({ name: "vol-loop", device, fuseDir });
    let done: Promise<unknown> = Promise.resolve(0);
    try {
      await volume.mount(target);
      if (previous)
        assert.is(await sh(`cd ${target} && sha256sum f${i - 1}`), previous, `f${i - 1} after close`);
      await sh(`head -c 2000000 /dev/urandom > ${target}/src${i}`);
      previous = await sh(`cd ${target} && sha256sum src${i} | sed 's/src${i}/f${i}/'`);
      // Still writing when close starts, from inside the file system: it is unmounted lazily, and the loop
      // device and the FUSE file wait until the writer is done.
      const script = `cd ${target} && exec 3>f${i} && head -c 65536 src${i} >&3 && echo started && tail -c +65537 src${i} >&3 && sync f${i}`;
      const writer = spawn("sh", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
      done = new Promise((resolve) => writer.once("exit", resolve));
      await within(
        new Promise((resolve) =>
          writer.stdout.on("data", (c: Buffer) => c.toString().includes("started") && resolve(0)),
        ),
        10_000,
        `writer ${i} starting`,
      );
    } finally {
      await within(volume.close(), 30_000, `close ${i}`);
    }
    assert.is(await done, 0, `writer ${i}`);
    assert.equal(await leftovers(fuseDir), []);
  }
});

test.run();
