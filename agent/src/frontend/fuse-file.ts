import { mkdir, rmdir } from "node:fs/promises";
import { join } from "node:path";
import Fuse from "fuse-native";
import type { BlockDevice } from "../contracts/index.js";
import { OperationError } from "../errors.js";
import type { Logger } from "./log.js";
import { withDeadline } from "./run.js";

/** A BlockDevice served as one regular file in a FUSE mount of its own. */
export interface FuseFile {
  /** The directory the FUSE file system is mounted on. */
  readonly mountPoint: string;
  /** The file that holds the device's bytes. */
  readonly path: string;
  /**
   * Unmounts the FUSE file system (lazily: a loop device still attached keeps being served); a `volume.timeout`
   * error if that has not finished after `timeoutMs`. Call it again after a failure.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * libfuse options, passed whole because fuse-native drops a zero `attr_timeout` and has no `direct_io`:
 * - direct_io: every read and write reaches the device; the kernel keeps no page cache of the file that
 *   could hide a write from a later reader or hold data the device never saw.
 * - attr_timeout=0, entry_timeout=0: the size is asked for on every stat, so a grown device shows at once.
 * - big_writes: writes of up to 128 KiB per request instead of one page.
 */
const MOUNT_OPTIONS = ["direct_io", "attr_timeout=0", "entry_timeout=0", "negative_timeout=0", "big_writes"];

class DeviceFuse extends Fuse {
  constructor(
    mnt: string,
    ops: Fuse.Operations,
    private readonly volume: string,
  ) {
    // No timeout: the device, not fuse-native's 15 s default, decides when an I/O has failed.
    super(mnt, ops, { timeout: false });
  }

  protected override _fuseOptions(): string {
    return `-o${[`fsname=holdfast:${this.volume}`, "subtype=holdfast", ...MOUNT_OPTIONS].join(",")}`;
  }
}

/** Mounts a FUSE file system on `<dir>/<name>` holding one file, `<name>`, whose bytes are the device's. */
export async function serveFuseFile(
  dir: string,
  name: string,
  device: BlockDevice,
  logger: Logger,
): Promise<FuseFile> {
  const mountPoint = join(dir, name);
  const filePath = `/${name}`;
  const started = new Date();
  const fileStat = (): Fuse.Stat => ({
    mode: 0o100600,
    size: device.size,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtime: started,
    atime: started,
    ctime: started,
    blksize: device.blockSize,
    blocks: Math.ceil(device.size / 512),
  });
  const dirStat: Fuse.Stat = { ...fileStat(), mode: 0o40700, size: 4096, nlink: 2, blocks: 8 };

  // fuse-native must never see a throw or a rejected promise: every answer is a number, errors are -errno.
  const answer = (cb: (result: number) => void, op: string, work: () => Promise<number>): void => {
    work().then(cb, (err: unknown) => {
      logger.error({ err, volume: name, op }, "FUSE file I/O failed");
      cb(Fuse.EIO);
    });
  };
  const durable = (op: string, cb: (code: number) => void) =>
    answer(cb, op, async () => {
      await device.flush();
      return 0;
    });
  const sameSize = (size: number, cb: (code: number) => void) => cb(size === device.size ? 0 : Fuse.EPERM);

  const ops: Fuse.Operations = {
    getattr: (path, cb) => {
      if (path === "/") return cb(0, dirStat);
      if (path === filePath) return cb(0, fileStat());
      cb(Fuse.ENOENT);
    },
    readdir: (path, cb) => {
      if (path !== "/") return cb(Fuse.ENOENT);
      cb(0, [name], [fileStat()]);
    },
    open: (path, _flags, cb) => cb(path === filePath ? 0 : Fuse.ENOENT),
    read: (_path, _fd, buf, len, pos, cb) =>
      answer(cb, "read", async () => {
        const n = Math.max(0, Math.min(len, device.size - pos));
        if (n === 0) return 0;
        const data = await device.read(pos, n);
        data.copy(buf, 0, 0, n);
        return n;
      }),
    write: (_path, _fd, buf, len, pos, cb) =>
      answer(cb, "write", async () => {
        const n = Math.min(len, device.size - pos);
        if (n <= 0) return Fuse.ENOSPC;
        // A copy: `buf` is libfuse's request buffer, reused (and detached) once we answer.
        await device.write(pos, Buffer.from(buf.subarray(0, n)));
        return n;
      }),
    // A loop device's flush, a file system's fsync and a writer's close all end here and must be durable.
    flush: (_path, _fd, cb) => durable("flush", cb),
    fsync: (_path, _datasync, _fd, cb) => durable("fsync", cb),
    fsyncdir: (_path, _datasync, _fd, cb) => cb(0),
    // The file is the device: its size changes only when the device is resized.
    truncate: (_path, size, cb) => sameSize(size, cb),
    ftruncate: (_path, _fd, size, cb) => sameSize(size, cb),
  };

  await mkdir(mountPoint, { recursive: true });
  const fuse = new DeviceFuse(mountPoint, ops, name);
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    await rmdir(mountPoint).catch(() => {});
    throw new OperationError(
      "volume.fuse",
      `cannot mount the FUSE file of volume "${name}" on ${mountPoint}: ${(err as Error).message}`,
      err,
    );
  }
  logger.debug({ volume: name, mountPoint }, "FUSE file served");

  return {
    mountPoint,
    path: join(mountPoint, name),
    close: async (timeoutMs) => {
      // fuse-native runs `fusermount -uz` in a child and then only lets go of the event loop: nothing here
      // waits on a FUSE request, but the child has no time limit of its own. A second call joins the first.
      const unmounted = new Promise<void>((resolve, reject) =>
        fuse.unmount((err) => (err ? reject(err) : resolve())),
      );
      await withDeadline(unmounted, timeoutMs, `fusermount -uz ${mountPoint}`);
      await rmdir(mountPoint).catch(() => {});
    },
  };
}
