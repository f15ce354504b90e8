import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TerraformStack, Testing } from "../../constructs/cdktf.js";

/**
 * A small stand-in for dist/holdfast-agent-<version>.tar.gz, so synth tests need no build: the constructs only read
 * its name and checksum. Returns its path.
 */
export function fakeArtifact(): string {
  if (!fake) {
    const dir = mkdtempSync(join(tmpdir(), "hf-constructs-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    fake = join(dir, "holdfast-agent-0.1.0.tar.gz");
    writeFileSync(fake, "not a real tarball\n");
  }
  return fake;
}
let fake: string | undefined;

/** A fresh stack in a test app (its own temporary outdir). */
export function testStack(): TerraformStack {
  return new TerraformStack(Testing.app(), "test");
}

export interface SynthJson {
  resource: Record<string, Record<string, Record<string, unknown>>>;
  output: Record<string, { value: unknown }>;
  data?: Record<string, Record<string, Record<string, unknown>>>;
  provider?: Record<string, Record<string, unknown>[]>;
}

/** Synthesizes with validations (what `cdktf synth` runs) and parses the JSON. */
export function synth(stack: TerraformStack): SynthJson {
  return JSON.parse(Testing.synth(stack, true)) as SynthJson;
}

/** Every resource of a type, as a list of its properties. */
export function resources(json: SynthJson, type: string): Record<string, unknown>[] {
  return Object.values(json.resource[type] ?? {});
}

/** The warnings annotated on a construct tree. */
export function warnings(stack: TerraformStack): string[] {
  return stack.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data)));
}
