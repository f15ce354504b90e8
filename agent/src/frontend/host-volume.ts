import { mkdir, readdir, rmdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { BlockDevice } from "../contracts/index.js";
import { ConflictError, OperationError, SpecError } from "../errors.js";
import { isName } from "../names.js";
import {
  type FilesystemType,
  growExtOffline,
  growFilesystem,
  makeFilesystem,
  mountFilesystem,
  probe,
  unmountFilesystem,
} from "./filesystem.js";
import { type FuseFile, serveFuseFile } from "./fuse-file.js";
import { connectKernelNbd, disconnectKernelNbd, kernelNbdAvailable } from "./kernel-nbd.js";
import { type Logger, silentLogger } from "./log.js";
import { attachLoop, detachLoop, listLoops, loopSize, refreshLoopCapacity } from "./loop.js";
import { readMounts } from "./mountinfo.js";

export interface HostVolumeOptions {
  /** Volume name: the FUSE file's name and the label in log messages (1-63 letters, digits, ".", "_", "-"). */
  name: string;
  /** The device to expose. */
  device: BlockDevice;
  /** Directory holding this agent's FUSE mounts; one sub-directory per volume is made in it. */
  fuseDir: string;
  /**
   * File system made on the first mount of a device that holds none; "none" exposes only the block device.
   * @default "ext4"
   */
  fs?: FilesystemType | "none";
  /**
   * Unix socket of an NBD server exporting `device`, used instead of FUSE + loop where the kernel has nbd.
   * @default undefined (FUSE + loop)
   */
  nbdSocket?: string;
  /** Where progress and failures are logged (pino or compatible). @default a logger that drops everything */
  logger?: Logger;
  /**
   * Milliseconds each step of `unmount` and `close` may take (umount, losetup --detach and the wait for the
   * kernel to let go of the file, fusermount) before it fails with `volume.timeout` instead of waiting on.
   * @default 30000
   */
  stepTimeoutMs?: number;
}

/** A device exposed as a block device on this host, and optionally mounted. */
export interface ExposedVolume {
  /** The block device: /dev/loopN or /dev/nbdN. */
  readonly devicePath: string;
  /** How the device reaches the kernel. */
  readonly method: "fuse-loop" | "kernel-nbd";
  /** Where the file system is mounted, if it is. */
  readonly mountPoint: string | undefined;
  /**
   * Makes the file system if the device holds none, creates `target` if missing, mounts the file system there
   * and grows it to fill the device.
   */
  mount(target: string): Promise<void>;
  /** Unmounts the file system; a ConflictError if it is in use. Does nothing when not mounted. */
  unmount(): Promise<void>;
  /** Once the device has grown to `newSize` bytes: the kernel sees the new size, a mounted file system fills it. */
  grow(newSize: number): Promise<void>;
  /**
   * Unmounts (lazily if busy), detaches the block device and removes the FUSE mount, trying every step even if
   * one fails, each within the step time limit; call it again after a failure. Idempotent.
   */
  close(): Promise<void>;
}

/** How the device reaches the kernel: FUSE file + loop device, or the kernel's NBD client. */
interface Attachment {
  readonly devicePath: string;
  readonly method: ExposedVolume["method"];
  /** Makes the block device take the device's current size. */
  refresh(): Promise<void>;
  /** Detaches the block device, each step within `timeoutMs`; safe to call again after a failure. */
  close(timeoutMs: number): Promise<void>;
}

const STEP_TIMEOUT_MS = 30_000;

/** Exposes the device as a block device on this host: /dev/nbdN where the kernel has nbd, else FUSE file + loop. */
export async function exposeVolume(opts: HostVolumeOptions): Promise<ExposedVolume> {
  if (!isName(opts.name)) {
    throw new SpecError("name", `"${opts.name}" is not a volume name: use letters, digits, ".", "_" and "-"`);
  }
  const logger = opts.logger ?? silentLogger;
  const stepTimeoutMs = opts.stepTimeoutMs ?? STEP_TIMEOUT_MS;
  const attachment =
    opts.nbdSocket !== undefined && (await kernelNbdAvailable())
      ? await attachKernelNbd(opts.nbdSocket, opts.device)
      : await attachFuseLoop(opts.name, opts.device, resolve(opts.fuseDir), logger, stepTimeoutMs);
  logger.info(
    { volume: opts.name, devicePath: attachment.devicePath, method: attachment.method },
    "volume exposed",
  );
  return new HostVolume(opts.name, opts.device, opts.fs ?? "ext4", attachment, logger, stepTimeoutMs);
}

class HostVolume implements ExposedVolume {
  mountPoint: string | undefined;
  /** The file system found or made by the last mount. */
  private fsType: string | undefined;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly name: string,
    private readonly device: BlockDevice,
    private readonly fs: FilesystemType | "none",
    private readonly attachment: Attachment,
    private readonly logger: Logger,
    private readonly stepTimeoutMs: number,
  ) {}

  get devicePath(): string {
    return this.attachment.devicePath;
  }

  get method(): ExposedVolume["method"] {
    return this.attachment.method;
  }

  mount(target: string): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.fs === "none") {
        throw new ConflictError(
          "volume.no_filesystem",
          `volume "${this.name}" has no file system (fs: none)`,
        );
      }
      if (this.mountPoint) {
        throw new ConflictError(
          "volume.mounted",
          `volume "${this.name}" is already mounted on ${this.mountPoint}`,
        );
      }
      const dir = resolve(target);
      const created = await this.makeTarget(dir);
      let type: string;
      try {
        type = await this.prepareFilesystem(this.fs);
        await mountFilesystem(this.devicePath, dir, type);
      } catch (err) {
        if (created) await removeEmptyDirs(dir, created);
        throw err;
      }
      this.mountPoint = dir;
      this.fsType = type;
      this.logger.info({ volume: this.name, mountPoint: dir, fs: type }, "volume mounted");
      // The device may have grown while unmounted, or while the agent was down.
      await this.fill(dir, type).catch((err: unknown) => {
        if (!this.mountPoint) throw err;
        this.logger.warn({ err, volume: this.name }, "could not grow the file system to fill the device");
      });
    });
  }

  unmount(): Promise<void> {
    return this.serial(async () => {
      if (!this.mountPoint) return;
      await unmountFilesystem(this.mountPoint, false, { timeoutMs: this.stepTimeoutMs });
      this.logger.info({ volume: this.name, mountPoint: this.mountPoint }, "volume unmounted");
      this.mountPoint = undefined;
    });
  }

  grow(newSize: number): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.device.size !== newSize) {
        throw new ConflictError(
          "volume.size",
          `volume "${this.name}" is ${this.device.size} bytes, not ${newSize}: grow the device first`,
        );
      }
      await this.attachment.refresh();
      if (this.mountPoint && this.fsType) await this.fill(this.mountPoint, this.fsType);
      this.logger.info({ volume: this.name, size: newSize }, "volume grown");
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      const failures: unknown[] = [];
      const mountPoint = this.mountPoint;
      if (mountPoint) {
        try {
          const step = { timeoutMs: this.stepTimeoutMs };
          await unmountFilesystem(mountPoint, false, step).catch((err: unknown) => {
            // Lazily if busy or out of time: a closing volume must not keep its loop device and FUSE mount behind.
            this.logger.warn(
              { err, volume: this.name },
              "cannot unmount the file system: unmounting it lazily",
            );
            return unmountFilesystem(mountPoint, true, step);
          });
          this.mountPoint = undefined;
        } catch (err) {
          failures.push(err);
        }
      }
      await this.attachment.close(this.stepTimeoutMs).catch((err: unknown) => failures.push(err));
      if (failures.length > 0) {
        const detail = failures.map((err) => (err instanceof Error ? err.message : String(err))).join("; ");
        throw new OperationError(
          "volume.close",
          `volume "${this.name}" did not close cleanly: ${detail}`,
          failures,
        );
      }
      this.closed = true;
      this.logger.info({ volume: this.name }, "volume closed");
    });
  }

  /** Grows the file system mounted on `dir` to fill the device, unmounting ext4 if it cannot grow online. */
  private async fill(dir: string, type: string): Promise<void> {
    if (await growFilesystem(type, this.devicePath, dir)) return;
    this.logger.warn(
      { volume: this.name },
      `${type} cannot grow online without CAP_SYS_RESOURCE: unmounting it`,
    );
    await unmountFilesystem(dir).catch((err: unknown) => {
      throw err instanceof ConflictError
        ? new ConflictError(
            "volume.busy",
            `${type} on ${dir} can grow only unmounted here, and it is in use (${err.message})`,
          )
        : err;
    });
    this.mountPoint = undefined;
    try {
      await growExtOffline(this.devicePath);
    } finally {
      await mountFilesystem(this.devicePath, dir, type);
      this.mountPoint = dir;
    }
  }

  /** Creates `dir` if missing; returns the first directory it created, to remove if the mount fails. */
  private async makeTarget(dir: string): Promise<string | undefined> {
    try {
      return await mkdir(dir, { recursive: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "EEXIST" || code === "ENOTDIR" ? "it is not a directory" : (err as Error).message;
      throw new ConflictError(
        "volume.mount_target",
        `cannot mount volume "${this.name}" on ${dir}: ${why}`,
        "target",
      );
    }
  }

  /** The device's file system type, made first if the device holds nothing. */
  private async prepareFilesystem(fs: FilesystemType): Promise<string> {
    const found = await probe(this.devicePath);
    if (found.type) {
      if (found.type !== fs) {
        this.logger.warn(
          { volume: this.name, found: found.type, asked: fs },
          "keeping the file system found",
        );
      }
      return found.type;
    }
    if (found.partitionTable) {
      throw new ConflictError(
        "volume.not_filesystem",
        `volume "${this.name}" holds a ${found.partitionTable} partition table, not a file system: not formatting it`,
      );
    }
    this.logger.info({ volume: this.name, fs }, "making a file system on the empty volume");
    await makeFilesystem(this.devicePath, fs);
    return fs;
  }

  private assertOpen(): void {
    if (this.closed) throw new ConflictError("volume.closed", `volume "${this.name}" is closed`);
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => {});
    return result;
  }
}

async function attachFuseLoop(
  name: string,
  device: BlockDevice,
  fuseDir: string,
  logger: Logger,
  stepTimeoutMs: number,
): Promise<Attachment> {
  const mountPoint = join(fuseDir, name);
  if ((await readMounts()).some((m) => m.mountPoint === mountPoint)) {
    throw new ConflictError(
      "volume.exposed",
      `volume "${name}" is already exposed: ${mountPoint} is mounted`,
    );
  }
  let file: FuseFile | undefined = await serveFuseFile(fuseDir, name, device, logger);
  let loop: string | undefined;
  try {
    loop = await attachLoop(file.path, device.blockSize);
  } catch (err) {
    try {
      // losetup can fail after attaching (setting direct I/O, for one): detach whatever holds the file.
      for (const l of await listLoops())
        if (l.backFile === file.path) await detachLoop(l.name, stepTimeoutMs);
      await file.close(stepTimeoutMs);
    } catch (undoErr) {
      logger.error({ err: undoErr, volume: name }, "could not undo a failed loop attach");
    }
    throw err;
  }
  const devicePath = loop;
  const fuseFile = file.path;
  return {
    devicePath,
    method: "fuse-loop",
    refresh: async () => {
      // loop reads the size the kernel caches for the file; a stat makes FUSE ask us for the new one first
      // (answered from memory: this process may stat its own FUSE file, never read or write a mounted volume).
      await stat(fuseFile);
      await refreshLoopCapacity(devicePath);
      const seen = await loopSize(devicePath);
      if (seen !== device.size) {
        throw new OperationError(
          "volume.grow",
          `${devicePath} is ${seen} bytes after a refresh, not ${device.size}`,
        );
      }
    },
    close: async (timeoutMs) => {
      if (loop) {
        // The FUSE mount goes only after the loop device lets go of the file, or it would outlive its mount.
        if (!(await detachLoop(loop, timeoutMs))) {
          throw new OperationError("volume.close", `${loop} is still held open by another process`);
        }
        loop = undefined;
      }
      if (file) {
        await file.close(timeoutMs);
        file = undefined;
      }
    },
  };
}

async function attachKernelNbd(socket: string, device: BlockDevice): Promise<Attachment> {
  let devicePath: string | undefined = await connectKernelNbd(socket, device.blockSize);
  const connected = devicePath;
  return {
    devicePath: connected,
    method: "kernel-nbd",
    refresh: async () => {
      throw new OperationError(
        "volume.grow",
        `${connected} keeps the size it was connected with: close and expose the volume again to see the new size`,
      );
    },
    close: async () => {
      if (devicePath) await disconnectKernelNbd(devicePath);
      devicePath = undefined;
    },
  };
}

/** Removes the directories from `dir` up to `top`, all made by this mount and empty; never a mounted one. */
async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let d = dir; d.startsWith(top); d = dirname(d)) {
    await rmdir(d).catch(() => {});
  }
}

/**
 * Clears what a killed agent left under `fuseDir`: file systems mounted from loop devices backed by its FUSE
 * files, those loop devices, and the (dead) FUSE mounts. Call it at agent start, before exposing any volume.
 */
export async function cleanupStale(fuseDir: string, logger: Logger = silentLogger): Promise<void> {
  const dir = resolve(fuseDir);
  const inside = (path: string) => path.startsWith(`${dir}/`);
  const loops = (await listLoops()).filter((l) => inside(l.backFile));
  const loopNames = new Set(loops.map((l) => l.name));
  const mounts = (await readMounts()).reverse(); // the most recent first: a mount may sit on an older one
  const failures: string[] = [];
  const attempt = async (what: string, work: () => Promise<unknown>) => {
    try {
      await work();
      logger.info({ fuseDir: dir }, `cleaned up ${what}`);
    } catch (err) {
      failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  // Lazily: the FUSE server behind them is gone, so nothing more can be written and nothing should wait.
  const step = { timeoutMs: STEP_TIMEOUT_MS };
  for (const m of mounts.filter((m) => loopNames.has(m.source))) {
    await attempt(`file system mount ${m.mountPoint}`, () => unmountFilesystem(m.mountPoint, true, step));
  }
  for (const l of loops) {
    await attempt(`loop device ${l.name}`, async () => {
      if (!(await detachLoop(l.name, STEP_TIMEOUT_MS))) throw new Error("still held open by another process");
    });
  }
  for (const m of mounts.filter((m) => inside(m.mountPoint))) {
    await attempt(`FUSE mount ${m.mountPoint}`, () => unmountFilesystem(m.mountPoint, true, step));
  }
  for (const entry of await readdir(dir).catch(() => [])) await rmdir(join(dir, entry)).catch(() => {});

  if (failures.length > 0) {
    throw new OperationError("volume.cleanup", `stale volumes under ${dir} remain: ${failures.join("; ")}`);
  }
}
