import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./agent-process.js";

const exec = promisify(execFile);

export interface AgentArtifact {
  /** Absolute path of dist/holdfast-agent-<version>.tar.gz. */
  path: string;
  version: string;
  sha256: string;
  /** The directory the tarball unpacks to: holdfast-agent-<version>. */
  topDir: string;
}

/**
 * The bundled agent artifact, built with `node scripts/build-artifact.mjs` unless one at least as new as the
 * bundle (dist/holdfast.mjs) is already there: `npm test` builds the bundle first, so a stale tarball is rebuilt.
 */
export function agentArtifact(): Promise<AgentArtifact> {
  // Once per process: callers running at once share one build.
  artifact ??= ensureArtifact();
  return artifact;
}
let artifact: Promise<AgentArtifact> | undefined;

async function ensureArtifact(): Promise<AgentArtifact> {
  const { version } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
  const topDir = `holdfast-agent-${version}`;
  const path = join(ROOT, "dist", `${topDir}.tar.gz`);
  const mtime = async (p: string) => (await stat(p).catch(() => undefined))?.mtimeMs ?? 0;
  const [tarball, bundle] = await Promise.all([
    mtime(`${path}.sha256`),
    mtime(join(ROOT, "dist/holdfast.mjs")),
  ]);
  if (tarball === 0 || tarball < bundle) {
    await exec("node", [join(ROOT, "scripts/build-artifact.mjs")], { cwd: ROOT });
  }
  const sha256 = (await readFile(`${path}.sha256`, "utf8")).split(/\s+/)[0] ?? "";
  return { path, version, sha256, topDir };
}
