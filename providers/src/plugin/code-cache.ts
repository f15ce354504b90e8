import { createHash } from "node:crypto";
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Script } from "node:vm";
import { privateCacheDir } from "./cache-dir.js";

/**
 * V8's code cache for the handshake half of the built provider (scripts/build-provider.mjs carries that half as a
 * string and compiles it here). Compiling it costs about 45 ms of the start-up and Terraform starts the provider 2 to
 * 5 times per command; Node 20 has no module.enableCompileCache, so the provider keeps the cache itself, beside the
 * AutoMTLS certificate (plugin/cache-dir.ts). The file is named by the code's hash, Node's version and the machine,
 * holds a SHA-256 of the cache ahead of it (V8 checks versions and flags, not the bytes), and is written beside and
 * renamed into place: providers starting together never read half a file, whichever of them writes last wins.
 */

/** What happened to the cache at this start, logged after the handshake. */
export type CodeCacheStatus = "hit" | "miss" | "rejected" | "corrupt" | "off";

/** A CommonJS module body compiled to a function: call it with require, module and exports. */
export type ModuleFunction = (
  require: NodeJS.Require,
  module: { exports: unknown },
  exports: unknown,
) => void;

const DIGEST_BYTES = 32;
const STALE_MS = 86_400_000;

let compiled: { script: Script; file: string | undefined; status: CodeCacheStatus } | undefined;

/** The cache file's path for `key` (the code's hash), or undefined when there is no private cache directory. */
function codeCacheFile(key: string): string | undefined {
  const dir = privateCacheDir();
  return dir && join(dir, `code-${key}-node${process.version}-${process.arch}.bin`);
}

function readCache(file: string): Buffer | "corrupt" | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return undefined;
  }
  const data = bytes.subarray(DIGEST_BYTES);
  const digest = createHash("sha256").update(data).digest();
  return bytes.length > DIGEST_BYTES && digest.equals(bytes.subarray(0, DIGEST_BYTES)) ? data : "corrupt";
}

/**
 * Compiles `code` (a CommonJS module body) with the code cache kept for `key`, if there is a good one. The cache is
 * written later, by saveCodeCache, once the code has run: V8 then includes the functions the start-up compiled.
 */
export function compileCached(code: string, key: string, filename: string): ModuleFunction {
  const file = codeCacheFile(key);
  const cached = file ? readCache(file) : undefined;
  const script = new Script(`(function (require, module, exports) {${code}\n})`, {
    filename,
    cachedData: cached instanceof Buffer ? cached : undefined,
  });
  let status: CodeCacheStatus = "off";
  if (file)
    status =
      cached === undefined
        ? "miss"
        : cached === "corrupt"
          ? "corrupt"
          : script.cachedDataRejected
            ? "rejected"
            : "hit";
  compiled = { script, file, status };
  return script.runInThisContext();
}

/**
 * Writes the code cache if this start had none that V8 took; call it once the start-up is done (after the
 * handshake). Returns what happened at this start, for the log.
 */
export function saveCodeCache(): CodeCacheStatus {
  if (!compiled) return "off";
  const { script, file, status } = compiled;
  compiled = undefined;
  if (!file || status === "hit") return status;
  const data = script.createCachedData();
  const temp = `${file}.${process.pid}`;
  try {
    writeFileSync(temp, Buffer.concat([createHash("sha256").update(data).digest(), data]), { mode: 0o600 });
    renameSync(temp, file);
  } catch {
    // No cache this time; the next start compiles again.
    rmSync(temp, { force: true });
  }
  removeStale(file);
  return status;
}

/**
 * Removes the caches of other builds (or Node versions) not written for a day: each upgrade would otherwise leave
 * a megabyte behind. A build still in use but removed here only pays one more compile.
 */
function removeStale(keep: string): void {
  const dir = dirname(keep);
  try {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name.startsWith("code-") && path !== keep && Date.now() - statSync(path).mtimeMs > STALE_MS)
        rmSync(path, { force: true });
    }
  } catch {
    // Another provider removed it first, or the directory is gone: nothing to do.
  }
}
