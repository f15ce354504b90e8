import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

/** The provider's schema as Terraform reports it: what the CDKTF bindings and the docs are generated from. */

const exec = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "../..");
export const SOURCE = "registry.terraform.io/holdfast/holdfast";
/** The provider's version: the repo's, as scripts/build-provider-mirror.mjs publishes it. */
export const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
  .version;

export type CtyType = string | [string, CtyType] | [string, Record<string, CtyType>];

export interface SchemaAttribute {
  type: CtyType;
  description?: string;
  required?: boolean;
  optional?: boolean;
  computed?: boolean;
  sensitive?: boolean;
}

export interface SchemaBlock {
  attributes?: Record<string, SchemaAttribute>;
  block_types?: Record<string, { nesting_mode: string; block: SchemaBlock }>;
  description?: string;
}

/** One provider's part of `terraform providers schema -json`. */
export interface ProviderSchema {
  provider: { block: SchemaBlock };
  resource_schemas: Record<string, { block: SchemaBlock }>;
  data_source_schemas: Record<string, { block: SchemaBlock }>;
}

/** Asks Terraform for the schema of the provider in providers/bin, through dev_overrides (no registry, no init). */
export async function readProviderSchema(): Promise<ProviderSchema> {
  const dir = await mkdtemp(join(tmpdir(), "hf-schema-"));
  try {
    const config = join(dir, "terraformrc");
    await writeFile(
      config,
      `provider_installation {\n  dev_overrides {\n    "holdfast/holdfast" = "${join(ROOT, "providers/bin")}"\n  }\n  direct {}\n}\n`,
    );
    await writeFile(
      join(dir, "main.tf"),
      'terraform {\n  required_providers {\n    holdfast = { source = "holdfast/holdfast" }\n  }\n}\n',
    );
    const { stdout } = await exec("terraform", ["providers", "schema", "-json"], {
      cwd: dir,
      env: { ...process.env, TF_CLI_CONFIG_FILE: config, CHECKPOINT_DISABLE: "1" },
      maxBuffer: 16 * 1024 * 1024,
    });
    const schema = (JSON.parse(stdout) as { provider_schemas: Record<string, ProviderSchema> })
      .provider_schemas[SOURCE];
    if (!schema) throw new Error(`terraform reported no schema for ${SOURCE}`);
    return schema;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
