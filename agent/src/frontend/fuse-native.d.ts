// The part of fuse-native 2.2.6 (which ships no types) that the FUSE file frontend uses.
declare module "fuse-native" {
  namespace Fuse {
    /** What `getattr` and `readdir` report; fuse-native turns the Dates into timestamps. */
    interface Stat {
      mode: number;
      size: number;
      uid: number;
      gid: number;
      nlink: number;
      mtime: Date;
      atime: Date;
      ctime: Date;
      blksize?: number;
      blocks?: number;
    }

    /** Callbacks take 0 or a negative errno first; `read`/`write` take the byte count or a negative errno. */
    interface Operations {
      getattr?(path: string, cb: (code: number, stat?: Stat) => void): void;
      readdir?(path: string, cb: (code: number, names?: string[], stats?: Stat[]) => void): void;
      open?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      read?(
        path: string,
        fd: number,
        buf: Buffer,
        len: number,
        pos: number,
        cb: (result: number) => void,
      ): void;
      write?(
        path: string,
        fd: number,
        buf: Buffer,
        len: number,
        pos: number,
        cb: (result: number) => void,
      ): void;
      flush?(path: string, fd: number, cb: (code: number) => void): void;
      fsync?(path: string, datasync: number, fd: number, cb: (code: number) => void): void;
      fsyncdir?(path: string, datasync: number, fd: number, cb: (code: number) => void): void;
      truncate?(path: string, size: number, cb: (code: number) => void): void;
      ftruncate?(path: string, fd: number, size: number, cb: (code: number) => void): void;
    }

    interface Options {
      /** Milliseconds before an unanswered operation fails with ETIMEDOUT; false waits forever. */
      timeout?: number | false;
      mkdir?: boolean;
    }
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    /** Runs `fusermount -uz` on the mount point, then stops dispatching. */
    unmount(cb: (err: Error | null) => void): void;
    /** The `-o` argument handed to libfuse. */
    protected _fuseOptions(): string;

    static readonly EPERM: number;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly ENOSPC: number;
  }

  export = Fuse;
}
