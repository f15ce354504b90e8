import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { agentArtifact } from "./agent-artifact.js";
import { ROOT } from "./agent-process.js";

const exec = promisify(execFile);

/** The example stacks, each in examples/<name>/ with a stack of the same name. */
export const EXAMPLES = ["aws-three-az", "hybrid", "volumes-gitops"] as const;
export type ExampleName = (typeof EXAMPLES)[number];

export const snapshotPath = (name: ExampleName) => join(ROOT, "examples", name, "snapshot.json");
export const REFRESH_COMMAND = "node --import tsx scripts/refresh-snapshots.ts";

/**
 * Synthesizes an example as a user does (`npx tsx main.ts` in its directory, into its cdktf.out) and returns its
 * stack JSON with what changes with every build of the agent made stable: the artifact's checksum becomes
 * `<artifact-sha256>`, asset directories lose their hash, the checkout's path becomes `<repo>`, and user data is shown decoded so a diff reads as a script.
 */
export async function synthExample(name: ExampleName): Promise<unknown> {
  const artifact = await agentArtifact();
  const dir = join(ROOT, "examples", name);
  await exec("npx", ["tsx", "main.ts"], { cwd: dir });
  const text = await readFile(join(dir, "cdktf.out/stacks", name, "cdk.tf.json"), "utf8");
  const sha256 = createHash("sha256")
    .update(await readFile(artifact.path))
    .digest("hex");
  const stable = (s: string) =>
    s
      .replaceAll(sha256, "<artifact-sha256>")
      .replaceAll(sha256.slice(0, 16), "<artifact-sha256-16>")
      .replace(/assets\/([^/]+)\/[0-9A-Fa-f]{16,}\//g, "assets/$1/<hash>/")
      .replaceAll(ROOT, "<repo>");
  return JSON.parse(text, (key, value) => {
    if (typeof value !== "string") return value;
    return stable(key === "user_data" ? Buffer.from(value, "base64").toString() : value);
  });
}
