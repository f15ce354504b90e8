import { lstatSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Where the provider keeps what its processes share (the AutoMTLS certificate, the code cache): the user's runtime
 * directory, else a per-user directory in the temp dir.
 */
function cacheDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  const uid = process.getuid?.() ?? "user";
  return runtime ? join(runtime, "holdfast-provider") : join(tmpdir(), `holdfast-provider-${uid}`);
}

/**
 * The cache directory, when it is ours alone: a directory (not a link) owned by this user, with no access for
 * others. Someone else may have made it first in a shared temp dir; then there is no cache.
 */
export function privateCacheDir(): string | undefined {
  const dir = cacheDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = lstatSync(dir);
    const ours =
      stat.isDirectory() && stat.uid === (process.getuid?.() ?? stat.uid) && (stat.mode & 0o077) === 0;
    return ours ? dir : undefined;
  } catch {
    return undefined;
  }
}
