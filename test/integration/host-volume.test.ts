// Real FUSE, loop devices, mkfs and mount (as root). This process serves the FUSE files, so every access to a
// mounted volume or a loop device runs in a child process (docs/decisions/0003).
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { BlockDevice } from "../../agent/src/contracts/index.js";
import { ConflictError, OperationError } from "../../agent/src/errors.js";
import {
  cleanupStale,
  type ExposedVolume,
  exposeVolume,
  readMounts,
} from "../../agent/src/frontend/index.js";
import { listLoops } from "../../agent/src/frontend/loop.js";
import { MemoryDevice } from "../support/memory-device.js";

const MiB = 1024 * 1024;
const dirs: string[] = [];

/** A fresh directory per test: `fuse` for the FUSE mounts, `mnt` for the file system. */
async function workDir(): Promise<{ dir: string; fuseDir: string; target: string }> {
  const dir = await mkdtemp(join(tmpdir(), "holdfast-hv-"));
  dirs.push(dir);
  return { dir, fuseDir: join(dir, "fuse"), target: join(dir, "mnt") };
}

/** Runs a shell command in a child process; rejects with its stderr. */
function sh(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("sh", ["-c", script], { encoding: "utf8" }, (err, stdout, stderr) =>
      err ? reject(new Error(`${script}: ${stderr || err.message}`)) : resolve(stdout.trim()),
    );
  });
}

/** The file system type mounted at `target`, or "" when nothing is. */
async function fsTypeAt(target: string): Promise<string> {
  return (await readMounts()).filter((m) => m.mountPoint === target).pop()?.fsType ?? "";
}

/** Loop devices backed by files under `dir`, and mounts under it or from those loop devices. */
async function leftovers(dir: string): Promise<string[]> {
  const loops = (await listLoops()).filter((l) => l.backFile.startsWith(`${dir}/`)).map((l) => l.name);
  const mounts = (await readMounts())
    .filter((m) => m.mountPoint.startsWith(`${dir}/`) || loops.includes(m.source))
    .map((m) => `${m.fsType} on ${m.mountPoint}`);
  return [...loops, ...mounts];
}

async function rejects(promise: Promise<unknown>, type: new (...args: never[]) => Error, message: RegExp) {
  try {
    await promise;
  } catch (err) {
    assert.instance(err, type);
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable("expected a rejection");
}

/** Exposes a device, runs `body`, and closes the volume whatever happens. */
async function withVolume(
  opts: { name: string; device: BlockDevice; fuseDir: string; fs?: "ext4" | "xfs" | "none" },
  body: (volume: ExposedVolume) => Promise<void>,
): Promise<void> {
  const volume = await exposeVolume(opts);
  try {
    await body(volume);
  } finally {
    await volume.close();
  }
}

const READ_TWICE = `
const fs = require("node:fs");
const fd = fs.openSync(process.argv[1], "r");
const read = () => { const b = Buffer.alloc(3); fs.readSync(fd, b, 0, 3, 0); console.log(b.toString()); };
read();
process.stdin.once("data", () => { read(); process.exit(0); });
`;

/** A device whose reads and writes throw while `failing` is set. */
class FailingDevice extends MemoryDevice {
  failing = false;
  override async read(offset: number, length: number): Promise<Buffer> {
    if (this.failing) throw new Error("injected read failure");
    return super.read(offset, length);
  }
  override async write(offset: number, data: Buffer): Promise<void> {
    if (this.failing) throw new Error("injected write failure");
    return super.write(offset, data);
  }
}

test.after(async () => {
  for (const dir of dirs) {
    await cleanupStale(join(dir, "fuse")).catch((err) => console.error(err));
    for (const m of (await readMounts()).reverse().filter((m) => m.mountPoint.startsWith(`${dir}/`))) {
      await sh(`umount -l '${m.mountPoint}'`).catch((err) => console.error(err));
    }
    // Never recurse into a directory something is still mounted under: that would read through our own FUSE.
    if ((await leftovers(dir)).length === 0) await rm(dir, { recursive: true, force: true });
  }
});

test("ext4: mkfs on first use, fsync reaches the device, files survive a remount, close leaves nothing", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(256 * MiB);
  await withVolume({ name: "vol-ext4", device, fuseDir }, async (volume) => {
    assert.is(volume.method, "fuse-loop");
    assert.match(volume.devicePath, /^\/dev\/loop\d+$/);
    await volume.mount(target);
    assert.is(volume.mountPoint, target);
    assert.is(await fsTypeAt(target), "ext4");
    await rejects(exposeVolume({ name: "vol-ext4", device, fuseDir }), ConflictError, /already exposed/);

    const flushes = device.flushes;
    await sh(
      `cd ${target} && head -c 3000000 /dev/urandom > a && dd if=a of=b bs=64k conv=fsync status=none`,
    );
    await sh(`cd ${target} && mkdir d && echo hello > d/c && sync d/c`);
    assert.ok(device.flushes > flushes, "fsync reached the device");
    const sums = await sh(`cd ${target} && sha256sum a b d/c`);

    await volume.unmount();
    assert.is(volume.mountPoint, undefined);
    assert.is(await fsTypeAt(target), "");
    await volume.mount(target);
    assert.is(await sh(`cd ${target} && sha256sum a b d/c`), sums);
  });
  assert.equal(await leftovers(fuseDir), []);
  assert.is(await fsTypeAt(target), "");
});

test("a device formatted before is mounted as is in a later exposure: no second mkfs", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(256 * MiB);
  let uuid = "";
  let sums = "";
  await withVolume({ name: "vol-again", device, fuseDir }, async (volume) => {
    await volume.mount(target);
    await sh(`cd ${target} && head -c 1000000 /dev/urandom > a && sync a`);
    sums = await sh(`cd ${target} && sha256sum a`);
    uuid = await sh(`blkid -p -o value -s UUID ${volume.devicePath}`);
  });
  // A new loop device over a new FUSE mount: everything it reads comes from the device.
  await withVolume({ name: "vol-again", device, fuseDir }, async (volume) => {
    await volume.mount(target);
    assert.is(await sh(`blkid -p -o value -s UUID ${volume.devicePath}`), uuid);
    assert.is(await sh(`cd ${target} && sha256sum a`), sums);
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("xfs on request, and grown online", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(512 * MiB);
  await withVolume({ name: "vol-xfs", device, fuseDir, fs: "xfs" }, async (volume) => {
    await volume.mount(target);
    assert.is(await fsTypeAt(target), "xfs");
    await sh(`echo hello > ${target}/f && sync ${target}/f`);
    const before = Number(await sh(`df -B1 --output=size ${target} | tail -1`));
    device.resize(1024 * MiB);
    await volume.grow(1024 * MiB);
    const after = Number(await sh(`df -B1 --output=size ${target} | tail -1`));
    assert.ok(after > before * 1.9, `xfs grew from ${before} to ${after} bytes`);
    assert.is(await sh(`cat ${target}/f`), "hello");
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("grow: the loop device and ext4 take the device's new size, mounted or at the next mount", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(256 * MiB);
  await withVolume({ name: "vol-grow", device, fuseDir }, async (volume) => {
    await volume.mount(target);
    const before = Number(await sh(`df -B1 --output=size ${target} | tail -1`));
    await rejects(volume.grow(512 * MiB), ConflictError, /grow the device first/);
    device.resize(512 * MiB);
    await volume.grow(512 * MiB);
    assert.is(Number(await sh(`blockdev --getsize64 ${volume.devicePath}`)), 512 * MiB);
    const after = Number(await sh(`df -B1 --output=size ${target} | tail -1`));
    assert.ok(after > before * 1.9, `ext4 grew from ${before} to ${after} bytes`);

    // Grown while unmounted: the next mount fills the device.
    await volume.unmount();
    device.resize(768 * MiB);
    await volume.grow(768 * MiB);
    await volume.mount(target);
    const remounted = Number(await sh(`df -B1 --output=size ${target} | tail -1`));
    assert.ok(remounted > after * 1.4, `ext4 grew from ${after} to ${remounted} bytes at mount`);
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("a mount target that is a file: a clear error, nothing formatted or mounted", async () => {
  const { dir, fuseDir } = await workDir();
  const file = join(dir, "not-a-dir");
  await writeFile(file, "");
  const device = new MemoryDevice(256 * MiB);
  await withVolume({ name: "vol-file", device, fuseDir }, async (volume) => {
    await rejects(volume.mount(file), ConflictError, /not-a-dir: it is not a directory/);
    assert.is(volume.mountPoint, undefined);
    assert.is(await fsTypeAt(file), "");
    assert.is(await sh(`blkid -p ${volume.devicePath} || echo none`), "none");
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("mkfs failing: the error quotes mkfs's stderr, nothing mounted or created", async () => {
  const { fuseDir, target } = await workDir();
  const device = new MemoryDevice(64 * MiB);
  await withVolume({ name: "vol-small", device, fuseDir, fs: "xfs" }, async (volume) => {
    await rejects(
      volume.mount(join(target, "deep")),
      OperationError,
      /mkfs\.xfs .*failed.*larger than 300MB/s,
    );
    assert.is(volume.mountPoint, undefined);
    assert.is(await sh(`test -e ${target} && echo exists || echo gone`), "gone");
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("a device that fails: EIO in the reader and writer, the agent lives on", async () => {
  const { fuseDir, target } = await workDir();
  const device = new FailingDevice(64 * MiB);
  await withVolume({ name: "vol-eio", device, fuseDir, fs: "none" }, async (volume) => {
    await rejects(volume.mount(target), ConflictError, /no file system/);
    const dev = volume.devicePath;
    await sh(`dd if=/dev/urandom of=${dev} bs=4k count=4 oflag=direct status=none`);
    device.failing = true;
    await rejects(sh(`dd if=${dev} of=/dev/null bs=4k count=1 iflag=direct`), Error, /Input\/output error/);
    await rejects(sh(`dd if=/dev/zero of=${dev} bs=4k count=1 oflag=direct`), Error, /Input\/output error/);
    device.failing = false;
    assert.is(await sh(`dd if=${dev} bs=4k count=4 iflag=direct status=none | wc -c`), String(16 * 1024));
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("no page cache hides the device: a reader holding the file open sees a write made behind its back", async () => {
  const { fuseDir } = await workDir();
  const device = new MemoryDevice(64 * MiB);
  await withVolume({ name: "vol-cache", device, fuseDir, fs: "none" }, async (volume) => {
    await device.write(0, Buffer.alloc(4096, "a"));
    // A separate Node process (not this one, which serves the file) reads, waits for a line, reads again.
    const reader = spawn(process.execPath, ["-e", READ_TWICE, join(fuseDir, "vol-cache", "vol-cache")]);
    const lines = createInterface({ input: reader.stdout })[Symbol.asyncIterator]();
    assert.is((await lines.next()).value, "aaa");
    await device.write(0, Buffer.alloc(4096, "b"));
    reader.stdin.write("\n");
    assert.is((await lines.next()).value, "bbb");
    assert.is(
      await sh(`dd if=${volume.devicePath} bs=4k count=1 iflag=direct status=none | head -c 3`),
      "bbb",
    );
  });
  assert.equal(await leftovers(fuseDir), []);
});

test("a loop device that cannot be attached leaves no FUSE mount behind", async () => {
  const { fuseDir } = await workDir();
  // No loop device takes 1000-byte sectors.
  const oddDevice = Object.assign(new MemoryDevice(64 * MiB), { blockSize: 1000 });
  await rejects(exposeVolume({ name: "vol-odd", device: oddDevice, fuseDir }), OperationError, /losetup/);
  assert.equal(await leftovers(fuseDir), []);
});

test("close twice is fine; a closed volume refuses work", async () => {
  const { fuseDir, target } = await workDir();
  // This host has no nbd module: an NBD socket does not change the method.
  const nbdSocket = "/nonexistent/nbd.sock";
  const volume = await exposeVolume({
    name: "vol-close",
    device: new MemoryDevice(256 * MiB),
    fuseDir,
    nbdSocket,
  });
  assert.is(volume.method, "fuse-loop");
  await volume.mount(target);
  await Promise.all([volume.close(), volume.close()]);
  await volume.close();
  await rejects(volume.mount(target), ConflictError, /is closed/);
  assert.equal(await leftovers(fuseDir), []);
  assert.is(await fsTypeAt(target), "");
});

test("cleanupStale clears what a SIGKILLed agent left, and the volume can be exposed again", async () => {
  const { fuseDir, target } = await workDir();
  const script = fileURLToPath(new URL("../support/host-volume-crash-child.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, fuseDir, target], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
      child.once("exit", (code) => reject(new Error(`the child exited (${code}) before it was ready`)));
    });
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
  const left = await leftovers(fuseDir);
  assert.ok(
    left.some((l) => l.startsWith("/dev/loop")),
    "a loop device is left",
  );
  assert.ok(left.includes(`ext4 on ${target}`), "the file system is left mounted");
  assert.ok(left.includes(`fuse.holdfast on ${join(fuseDir, "crashed")}`), "the FUSE mount is left");

  await cleanupStale(fuseDir);
  assert.equal(await leftovers(fuseDir), []);
  assert.is(await fsTypeAt(target), "");

  await withVolume({ name: "crashed", device: new MemoryDevice(256 * MiB), fuseDir }, async (volume) => {
    assert.match(volume.devicePath, /^\/dev\/loop\d+$/);
  });
  assert.equal(await leftovers(fuseDir), []);
});

test.run();
