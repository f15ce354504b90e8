import { access, readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "./run.js";

/** A loop device in use, as `losetup --list` reports it. */
export interface LoopDevice {
  /** The device path, /dev/loopN. */
  name: string;
  /** The file it is attached to. */
  backFile: string;
}

/**
 * Attaches `file` to a free loop device with sectors of `sectorSize` bytes (the device's block size, so file
 * systems align their I/O to it) and returns the device's path.
 */
export async function attachLoop(file: string, sectorSize: number): Promise<string> {
  // Direct I/O: loop sends several requests at once to the FUSE file instead of one by one through its cache.
  const args = ["--find", "--show", "--direct-io=on", "--sector-size", String(sectorSize), file];
  return (await run("volume.loop", "losetup", args)).trim();
}

/** The loop device's size in bytes, as the kernel sees it. */
export async function loopSize(loop: string): Promise<number> {
  return Number((await readFile(`/sys/block/${basename(loop)}/size`, "utf8")).trim()) * 512;
}

/** Makes the loop device take the size of its (grown) file. */
export async function refreshLoopCapacity(loop: string): Promise<void> {
  await run("volume.loop", "losetup", ["--set-capacity", loop]);
}

/**
 * Detaches the loop device. The kernel defers the detach of a device something still holds open; this waits up
 * to `waitMs` (for losetup, then for the kernel) and says whether the device has let go of its file.
 */
export async function detachLoop(loop: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  if (await isAttached(loop)) {
    // Detached between the look and the detach (the kernel's deferred detach completed): that is the goal, not a failure.
    await run("volume.loop", "losetup", ["--detach", loop], { timeoutMs: waitMs }).catch(async (err) => {
      if (await isAttached(loop)) throw err;
    });
  }
  for (; await isAttached(loop); await sleep(50)) {
    if (Date.now() > deadline) return false;
  }
  return true;
}

/** Every loop device in use on this host. */
export async function listLoops(): Promise<LoopDevice[]> {
  const out = await run("volume.loop", "losetup", ["--json", "--list"]);
  if (!out.trim()) return [];
  const { loopdevices = [] } = JSON.parse(out) as { loopdevices?: { name: string; "back-file"?: string }[] };
  // A file replaced or unlinked since the attach is reported with a " (deleted)" suffix.
  return loopdevices.map((d) => ({
    name: d.name,
    backFile: (d["back-file"] ?? "").replace(/ \(deleted\)$/, ""),
  }));
}

async function isAttached(loop: string): Promise<boolean> {
  return access(`/sys/block/${basename(loop)}/loop/backing_file`).then(
    () => true,
    () => false,
  );
}
