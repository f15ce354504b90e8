import { ConflictError, OperationError } from "../errors.js";
import { commandError, type RunOptions, run, runStatus } from "./run.js";

/** The file systems the frontend makes. */
export type FilesystemType = "ext4" | "xfs";

const EXT = /^ext[234]$/;

/** What a low-level probe of a device found. */
export interface Probe {
  /** The file system (or other content: swap, LVM2_member…) blkid recognised. */
  type?: string;
  /** The partition table type, for a device partitioned rather than formatted. */
  partitionTable?: string;
}

/** Probes the device itself (`blkid -p`), not blkid's cache, which knows nothing of a new loop device. */
export async function probe(dev: string): Promise<Probe> {
  const args = ["-p", "-o", "export", dev];
  const result = await runStatus("blkid", args);
  // Exit 2: nothing recognised on the device.
  if (result.code === 2) return {};
  if (result.code !== 0) throw commandError("volume.probe", "blkid", args, result);
  const found = new Map(result.stdout.split("\n").map((line) => line.split("=", 2) as [string, string]));
  return { type: found.get("TYPE"), partitionTable: found.get("PTTYPE") };
}

/** Makes a file system on the device; `probe` must have found nothing there. */
export async function makeFilesystem(dev: string, type: FilesystemType): Promise<void> {
  // No discard: the FUSE file cannot punch holes, so discarding would only be refused block by block.
  if (type === "ext4") await run("volume.mkfs", "mkfs.ext4", ["-q", "-F", "-E", "nodiscard", dev]);
  else await run("volume.mkfs", "mkfs.xfs", ["-q", "-K", dev]);
}

/**
 * Mounts the volume's file system. Always nosuid and nodev: its contents are a container's to write, so a setuid
 * binary or a device node on it must not give the host's root or devices to whoever wrote it.
 */
export async function mountFilesystem(dev: string, target: string, type: string): Promise<void> {
  await run("volume.mount", "mount", ["-t", type, "-o", "nosuid,nodev", dev, target]);
}

/**
 * Unmounts `target`; a busy file system is a ConflictError unless `lazy`, which detaches it at once. A target
 * no longer mounted counts as done: a umount that timed out may have finished since.
 */
export async function unmountFilesystem(target: string, lazy = false, opts: RunOptions = {}): Promise<void> {
  const args = lazy ? ["-l", target] : [target];
  const result = await runStatus("umount", args, opts);
  if (result.code === 0 || /not mounted/.test(result.stderr)) return;
  if (/busy/i.test(result.stderr)) {
    throw new ConflictError(
      "volume.busy",
      `cannot unmount ${target}: it is in use (${result.stderr.trim()})`,
    );
  }
  throw commandError("volume.unmount", "umount", args, result);
}

/**
 * Grows the mounted file system to fill its (grown) device. Returns false when the kernel refuses ext2/3/4 an
 * online resize: that takes CAP_SYS_RESOURCE, which containers often drop; `growExtOffline` then does it.
 */
export async function growFilesystem(type: string, dev: string, mountPoint: string): Promise<boolean> {
  if (type === "xfs") {
    await run("volume.grow", "xfs_growfs", [mountPoint]);
    return true;
  }
  if (!EXT.test(type)) {
    throw new OperationError("volume.grow", `cannot grow a ${type} file system (only ext2/3/4 and xfs)`);
  }
  const result = await runStatus("resize2fs", [dev]);
  if (/Permission denied to resize/.test(result.stderr)) return false;
  if (result.code !== 0) throw commandError("volume.grow", "resize2fs", [dev], result);
  return true;
}

/** Grows an unmounted ext2/3/4 file system to fill its device; resize2fs wants a forced check first. */
export async function growExtOffline(dev: string): Promise<void> {
  const args = ["-f", "-p", dev];
  const check = await runStatus("e2fsck", args);
  // 1: errors were found and corrected.
  if (check.code > 1) throw commandError("volume.grow", "e2fsck", args, check);
  await run("volume.grow", "resize2fs", [dev]);
}
