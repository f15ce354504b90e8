import { close, fdatasync, fsync, open, read, write } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Positional file I/O as promises over the callback API: `fs/promises` wraps every call in a FileHandle
 * operation, which costs measurably on the data path, and these are called once per block request.
 */
export function openFile(path: string, flags: string | number, mode = 0o600): Promise<number> {
  return new Promise((resolve, reject) =>
    open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Longest piece handed to the kernel in one write. Linux (ext4 since 6.x) sizes page-cache folios by the write that
 * creates them, and a later small write into a large folio costs in proportion to the folio: after 1 MiB writes, a
 * 4 KiB write took five times the CPU it takes after 64 KiB ones (docs/decisions/0004-inline-io.md).
 */
const PIECE = 64 * 1024;

/**
 * Writes all of `data` at `position`, in pieces that do not cross a PIECE boundary, issued together: the thread
 * pool writes them side by side.
 */
export async function writeAt(fd: number, data: Buffer, position: number): Promise<void> {
  if (data.length <= PIECE - (position % PIECE)) return writeWhole(fd, data, position);
  const pieces: Promise<void>[] = [];
  for (let at = 0; at < data.length; ) {
    const end = Math.min(data.length, at + PIECE - ((position + at) % PIECE));
    pieces.push(writeWhole(fd, data.subarray(at, end), position + at));
    at = end;
  }
  await Promise.all(pieces);
}

/** Writes all of `data` at `position`, looping over short writes. */
async function writeWhole(fd: number, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    done += await new Promise<number>((resolve, reject) =>
      write(fd, data, done, data.length - done, position + done, (err, n) =>
        err ? reject(err) : resolve(n),
      ),
    );
  }
}

/** Reads `target.length` bytes at `position`; bytes past the end of the file read as zeros. */
export async function readAt(fd: number, target: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const n = await new Promise<number>((resolve, reject) =>
      read(fd, target, done, target.length - done, position + done, (err, count) =>
        err ? reject(err) : resolve(count),
      ),
    );
    if (n === 0) {
      target.fill(0, done);
      return;
    }
    done += n;
  }
}

export function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function syncAll(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

let replacements = 0;

/**
 * Replaces the file at `path` with `content` so that a crash leaves either the old file or the new one, whole:
 * written to a temporary name of its own (concurrent replacements never share one), synced, renamed over, and the
 * directory synced so the rename itself survives a power cut.
 */
export async function replaceFile(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${++replacements}.tmp`;
  const fd = await openFile(tmp, "w");
  try {
    await writeWhole(fd, Buffer.from(content), 0);
    await syncAll(fd);
  } finally {
    await closeFile(fd);
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dir = await openFile(dirname(path), "r");
  try {
    await syncAll(dir);
  } finally {
    await closeFile(dir);
  }
}
