/**
 * A real NFSv4 client for tests: libnfs 4.0 (Debian libnfs13) loaded through koffi. Every call runs on koffi's
 * worker thread, so a server that does not answer stalls the call, not the test's event loop.
 *
 * libnfs 4.0's limits shape this face: it speaks NFSv4.0 only, fails writes of about 4,000 bytes or more (so
 * `write` sends pieces of WRITE_PIECE), an `open` with O_CREAT of a file that exists fails with EEXIST, and after a
 * LOCK its open-owner's sequence goes wrong (the next OPEN or CLOSE of that context gets NFS4ERR_BAD_SEQID): a
 * context that locks should do nothing after but hold the lock or go.
 */
import { constants } from "node:os";
import koffi, { type LibraryHandle } from "koffi";

const lib = koffi.load("libnfs.so.13");
const Context = koffi.opaque("nfs_context");
const Fh = koffi.opaque("nfsfh");
const Dir = koffi.opaque("nfsdir");
const Url = koffi.struct("nfs_url", { server: "char *", path: "char *", file: "char *" });
const Timeval = koffi.struct("nfs_timeval", { tv_sec: "long", tv_usec: "long" });
const Dirent = koffi.struct("nfsdirent", {
  next: "void *",
  name: "char *",
  inode: "uint64_t",
  type: "uint32_t",
  mode: "uint32_t",
  size: "uint64_t",
  atime: Timeval,
  mtime: Timeval,
  ctime: Timeval,
  uid: "uint32_t",
  gid: "uint32_t",
  nlink: "uint32_t",
});
const Stat = koffi.struct("nfs_stat_64", {
  dev: "uint64_t",
  ino: "uint64_t",
  mode: "uint64_t",
  nlink: "uint64_t",
  uid: "uint64_t",
  gid: "uint64_t",
  rdev: "uint64_t",
  size: "uint64_t",
  blksize: "uint64_t",
  blocks: "uint64_t",
  atime: "uint64_t",
  mtime: "uint64_t",
  ctime: "uint64_t",
  atime_nsec: "uint64_t",
  mtime_nsec: "uint64_t",
  ctime_nsec: "uint64_t",
  used: "uint64_t",
});
const ContextPtr = koffi.pointer(Context);
const FhPtr = koffi.pointer(Fh);
const DirPtr = koffi.pointer(Dir);

/** One bound libnfs function (koffi does not export the type by name). */
type NativeFunction = ReturnType<LibraryHandle["func"]>;

const c = {
  init: lib.func("nfs_init_context", ContextPtr, []),
  destroy: lib.func("nfs_destroy_context", "void", [ContextPtr]),
  error: lib.func("nfs_get_error", "const char *", [ContextPtr]),
  setTimeout: lib.func("nfs_set_timeout", "void", [ContextPtr, "int"]),
  setClientName: lib.func("nfs4_set_client_name", "void", [ContextPtr, "const char *"]),
  parseUrlDir: lib.func("nfs_parse_url_dir", koffi.pointer(Url), [ContextPtr, "const char *"]),
  destroyUrl: lib.func("nfs_destroy_url", "void", [koffi.pointer(Url)]),
  mount: lib.func("nfs_mount", "int", [ContextPtr, "const char *", "const char *"]),
  open2: lib.func("nfs_open2", "int", [
    ContextPtr,
    "const char *",
    "int",
    "int",
    koffi.out(koffi.pointer(FhPtr)),
  ]),
  close: lib.func("nfs_close", "int", [ContextPtr, FhPtr]),
  pread: lib.func("nfs_pread", "int", [ContextPtr, FhPtr, "uint64_t", "uint64_t", "void *"]),
  pwrite: lib.func("nfs_pwrite", "int", [ContextPtr, FhPtr, "uint64_t", "uint64_t", "const void *"]),
  fsync: lib.func("nfs_fsync", "int", [ContextPtr, FhPtr]),
  lockf: lib.func("nfs_lockf", "int", [ContextPtr, FhPtr, "int", "uint64_t"]),
  rename: lib.func("nfs_rename", "int", [ContextPtr, "const char *", "const char *"]),
  unlink: lib.func("nfs_unlink", "int", [ContextPtr, "const char *"]),
  mkdir: lib.func("nfs_mkdir", "int", [ContextPtr, "const char *"]),
  rmdir: lib.func("nfs_rmdir", "int", [ContextPtr, "const char *"]),
  stat: lib.func("nfs_stat64", "int", [ContextPtr, "const char *", koffi.out(koffi.pointer(Stat))]),
  opendir: lib.func("nfs_opendir", "int", [ContextPtr, "const char *", koffi.out(koffi.pointer(DirPtr))]),
  readdir: lib.func("nfs_readdir", koffi.pointer(Dirent), [ContextPtr, DirPtr]),
  closedir: lib.func("nfs_closedir", "void", [ContextPtr, DirPtr]),
};

/** libnfs 4.0 fails NFSv4 writes of about 4,000 bytes; this is well under. */
export const WRITE_PIECE = 3000;
const READ_PIECE = 64 * 1024;

/**
 * An NFS call that failed: `code` is the errno name (ENOENT, EEXIST, ...), as a POSIX caller would see it;
 * `status` the NFSv4 status libnfs reported, when it named one (NFS4ERR_GRACE has no errno of its own).
 */
export class NfsError extends Error {
  readonly status: string | undefined;

  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = "NfsError";
    this.status = /NFS4ERR_[A-Z_]+/.exec(message)?.[0];
  }
}

let contexts = 0;

const errnoNames = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** Runs one libnfs call on koffi's worker thread. */
function call<T>(fn: NativeFunction, ...args: unknown[]): Promise<T> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, result: T) => (err ? reject(err) : resolve(result)));
  });
}

/** The lock operations of `lockf` (libnfs's enum nfs4_lock_op). */
export const LockOp = { lock: 0, tryLock: 1, unlock: 2, test: 3 } as const;

/** A file opened through an NfsClient. */
export class NfsFile {
  constructor(
    private readonly client: NfsClient,
    readonly handle: unknown,
    readonly path: string,
  ) {}

  /** Writes `data` at `offset` in pieces libnfs 4.0 can send. */
  async write(data: Buffer, offset = 0): Promise<void> {
    for (let at = 0; at < data.length; at += WRITE_PIECE) {
      const piece = data.subarray(at, at + WRITE_PIECE);
      let done = 0;
      while (done < piece.length) {
        const rest = piece.subarray(done);
        done += await this.client.check(
          `write ${this.path}`,
          c.pwrite,
          this.handle,
          offset + at + done,
          rest.length,
          rest,
        );
      }
    }
  }

  /** Reads `length` bytes from `offset`, fewer at the end of the file. */
  async read(length: number, offset = 0): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const want = Math.min(READ_PIECE, length - got);
      const piece = Buffer.alloc(want);
      const n = await this.client.check(`read ${this.path}`, c.pread, this.handle, offset + got, want, piece);
      if (n === 0) break;
      piece.copy(out, got, 0, n);
      got += n;
    }
    return out.subarray(0, got);
  }

  async fsync(): Promise<void> {
    await this.client.check(`fsync ${this.path}`, c.fsync, this.handle);
  }

  /** `lockf(3)` from the file's current offset (0: libnfs keeps none for pread/pwrite) over `length` bytes (0: to the end). */
  async lock(op: (typeof LockOp)[keyof typeof LockOp], length = 0): Promise<void> {
    await this.client.check(`lockf ${this.path}`, c.lockf, this.handle, op, length);
  }

  async close(): Promise<void> {
    await this.client.check(`close ${this.path}`, c.close, this.handle);
  }
}

/** One NFSv4 client context mounted on one export. */
export class NfsClient {
  private constructor(private readonly context: unknown) {}

  /**
   * Mounts the export an `nfs://HOST/PATH?version=4&nfsport=PORT` URL names: the form `volume inspect` prints and
   * libnfs's own tools accept.
   */
  static async mount(
    url: string,
    options: { timeoutMs?: number; clientName?: string } = {},
  ): Promise<NfsClient> {
    const context = c.init();
    if (!context) throw new Error("nfs_init_context failed");
    const client = new NfsClient(context);
    c.setTimeout(context, options.timeoutMs ?? 30_000);
    // libnfs names every context of a process alike, and a server takes a second SETCLIENTID under a known name
    // for a reboot of that client, dropping the first context's state (NFS4ERR_EXPIRED): each gets its own.
    c.setClientName(context, options.clientName ?? `holdfast-test pid:${process.pid} context:${++contexts}`);
    const parsed = c.parseUrlDir(context, url);
    if (!parsed) {
      const message = c.error(context);
      c.destroy(context);
      throw new NfsError("EINVAL", constants.errno.EINVAL, `bad NFS URL ${url}: ${message}`);
    }
    const { server, path } = koffi.decode(parsed, Url) as { server: string; path: string };
    c.destroyUrl(parsed);
    try {
      await client.check(`mount ${url}`, c.mount, server, path);
    } catch (err) {
      c.destroy(context);
      throw err;
    }
    return client;
  }

  /** Runs a call that answers a count or -errno; turns a negative answer into an NfsError. */
  async check(what: string, fn: NativeFunction, ...args: unknown[]): Promise<number> {
    const result = await call<number>(fn, this.context, ...args);
    if (result >= 0) return result;
    const name = errnoNames.get(-result) ?? `errno ${-result}`;
    throw new NfsError(name, -result, `${what}: ${name}: ${c.error(this.context) ?? ""}`);
  }

  /** Opens `path` with POSIX `flags` (fs.constants.O_*) and, when it creates the file, `mode`. */
  async open(path: string, flags: number, mode = 0o644): Promise<NfsFile> {
    const out = [null];
    await this.check(`open ${path}`, c.open2, path, flags, mode, out);
    return new NfsFile(this, out[0], path);
  }

  /** Writes a whole file (created or truncated), fsyncs and closes it. */
  async writeFile(path: string, data: Buffer, flags: number): Promise<void> {
    const file = await this.open(path, flags, 0o644);
    try {
      await file.write(data);
      await file.fsync();
    } finally {
      await file.close();
    }
  }

  /** Reads a whole file. */
  async readFile(path: string): Promise<Buffer> {
    const { size } = await this.stat(path);
    const file = await this.open(path, 0);
    try {
      return await file.read(size);
    } finally {
      await file.close();
    }
  }

  async stat(path: string): Promise<{ size: number; mode: number; ino: number }> {
    const out = {};
    await this.check(`stat ${path}`, c.stat, path, out);
    const st = out as { size: bigint | number; mode: bigint | number; ino: bigint | number };
    return { size: Number(st.size), mode: Number(st.mode), ino: Number(st.ino) };
  }

  async rename(from: string, to: string): Promise<void> {
    await this.check(`rename ${from} ${to}`, c.rename, from, to);
  }

  async unlink(path: string): Promise<void> {
    await this.check(`unlink ${path}`, c.unlink, path);
  }

  async mkdir(path: string): Promise<void> {
    await this.check(`mkdir ${path}`, c.mkdir, path);
  }

  async rmdir(path: string): Promise<void> {
    await this.check(`rmdir ${path}`, c.rmdir, path);
  }

  /** The names in a directory, without `.` and `..`, sorted. */
  async readdir(path: string): Promise<string[]> {
    const out = [null];
    await this.check(`opendir ${path}`, c.opendir, path, out);
    const names: string[] = [];
    try {
      for (;;) {
        const entry = c.readdir(this.context, out[0]);
        if (!entry) break;
        const { name } = koffi.decode(entry, Dirent) as { name: string };
        if (name !== "." && name !== "..") names.push(name);
      }
    } finally {
      c.closedir(this.context, out[0]);
    }
    return names.sort();
  }

  /** Ends the session; the context's open files and locks go with it. */
  close(): void {
    c.destroy(this.context);
  }
}
