// Builds the one artifact a host installs: dist/holdfast-agent-<version>.tar.gz, plus its .sha256 beside it.
//
// The tarball holds one directory, holdfast-agent-<version>/, laid out like a checkout so that the same launcher
// runs it: bin/holdfast, dist/holdfast.mjs (the esbuild bundle and its source map), and node_modules/ with exactly
// the two packages the bundle leaves external and what they require at run time: fuse-native (a native binding and
// its libfuse) and etcd3 (it reads its .proto files from its own directory). The host needs Node 20 and nothing
// from npm. Entries are sorted, owned by root and dated at the epoch, so a rebuild of the same code has the same
// checksum.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const EXTERNAL = ["fuse-native", "etcd3"];

await import("./build.mjs");

const { version } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
const name = `holdfast-agent-${version}`;
const stage = join(ROOT, "dist", "stage");
const top = join(stage, name);
await rm(stage, { recursive: true, force: true });
await mkdir(join(top, "dist"), { recursive: true });

await cp(join(ROOT, "bin/holdfast"), join(top, "bin/holdfast"));
for (const file of ["holdfast.mjs", "holdfast.mjs.map"]) {
  await cp(join(ROOT, "dist", file), join(top, "dist", file));
}
await writeFile(join(top, "VERSION"), `${version}\n`);

/** Node's lookup: `pkg` from `fromDir`, then each parent's node_modules up to the repository root. */
async function resolvePackage(pkg, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", pkg);
    if (await stat(join(candidate, "package.json")).catch(() => undefined)) return candidate;
    if (dir === ROOT || dir === dirname(dir)) return undefined;
  }
}

// The run-time closure of the external packages, each copied to the same place it has in node_modules.
const seen = new Set();
async function include(pkg, fromDir, optional) {
  const dir = await resolvePackage(pkg, fromDir);
  if (!dir) {
    if (optional) return;
    throw new Error(`build-artifact: ${pkg} (needed from ${relative(ROOT, fromDir)}) is not installed`);
  }
  if (seen.has(dir)) return;
  seen.add(dir);
  await cp(dir, join(top, relative(ROOT, dir)), {
    recursive: true,
    filter: (src) => !relative(dir, src).split("/").includes("node_modules"),
  });
  const manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
  for (const dep of Object.keys(manifest.dependencies ?? {})) await include(dep, dir, false);
  // fuse-shared-library lists every platform's library; only the ones npm installed here can be copied.
  for (const dep of Object.keys(manifest.optionalDependencies ?? {})) await include(dep, dir, true);
}
for (const pkg of EXTERNAL) await include(pkg, ROOT, false);

const tarball = join(ROOT, "dist", `${name}.tar.gz`);
execFileSync("tar", [
  "--sort=name",
  "--mtime=@0",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "-C",
  stage,
  "-cf",
  tarball.replace(/\.gz$/, ""),
  name,
]);
execFileSync("gzip", ["-n", "-f", "-9", tarball.replace(/\.gz$/, "")]);
await rm(stage, { recursive: true, force: true });

const sha256 = createHash("sha256")
  .update(await readFile(tarball))
  .digest("hex");
await writeFile(`${tarball}.sha256`, `${sha256}  ${name}.tar.gz\n`);
const { size } = await stat(tarball);
console.log(
  `${relative(ROOT, tarball)} ${(size / 2 ** 20).toFixed(1)} MiB sha256 ${sha256} (${seen.size} packages)`,
);
