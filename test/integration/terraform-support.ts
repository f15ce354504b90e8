import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "uvu";
import { AgentProcess, ROOT, sh } from "../support/agent-process.js";

/** Where the build puts the provider; a dev_overrides CLI configuration points Terraform here. */
export const PROVIDER_BIN = join(ROOT, "providers/bin");
export const EXAMPLES = join(ROOT, "providers/examples");

/** Builds the provider bundle the tests run, as `npm run build` does. */
export async function buildProvider(): Promise<void> {
  await sh(process.execPath, [join(ROOT, "scripts/build-provider.mjs")]);
}

export interface TfResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A Terraform working directory with its own CLI configuration: by default a dev_overrides one that serves
 * holdfast/holdfast from providers/bin with no `terraform init`.
 */
export class TerraformDir {
  private constructor(
    readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(env: NodeJS.ProcessEnv, cliConfig?: string): Promise<TerraformDir> {
    const dir = await mkdtemp(join(tmpdir(), "hf-tf-"));
    let config = cliConfig;
    if (!config) {
      config = join(dir, "terraformrc");
      await writeFile(
        config,
        `provider_installation {\n  dev_overrides {\n    "holdfast/holdfast" = "${PROVIDER_BIN}"\n  }\n  direct {}\n}\n`,
      );
    }
    const work = join(dir, "work");
    await sh("mkdir", ["-p", work]);
    return new TerraformDir(work, {
      ...process.env,
      ...env,
      TF_CLI_CONFIG_FILE: config,
      TF_IN_AUTOMATION: "1",
      CHECKPOINT_DISABLE: "1",
    });
  }

  /** Replaces the configuration with `files` (name to HCL). */
  async write(files: Record<string, string>): Promise<void> {
    await sh("sh", ["-c", `rm -f ${JSON.stringify(this.dir)}/*.tf`]);
    for (const [name, text] of Object.entries(files)) await writeFile(join(this.dir, name), text);
  }

  /** `terraform ARGS` in the directory; never throws. */
  run(...args: string[]): Promise<TfResult> {
    return this.runWith({}, ...args);
  }

  /** `terraform ARGS` with more environment (`TF_LOG`); never throws. */
  runWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<TfResult> {
    return new Promise((resolve) => {
      execFile(
        "terraform",
        [...args],
        { cwd: this.dir, env: { ...this.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** `terraform ARGS` that must succeed; throws with Terraform's output when it does not. */
  async ok(...args: string[]): Promise<string> {
    const result = await this.run(...args);
    if (result.code !== 0)
      throw new Error(
        `terraform ${args.join(" ")} exited ${result.code}:\n${result.stderr}\n${result.stdout}`,
      );
    return result.stdout;
  }

  /** `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 an error. */
  plan(): Promise<TfResult> {
    return this.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
  }

  apply(...extra: string[]): Promise<string> {
    return this.ok("apply", "-no-color", "-input=false", "-auto-approve", ...extra);
  }

  async remove(): Promise<void> {
    await rm(join(this.dir, ".."), { recursive: true, force: true });
  }
}

/** The provider block and required_providers every test configuration starts with. */
export function providerBlock(extra = ""): string {
  return `terraform {
  required_providers {
    holdfast = { source = "holdfast/holdfast" }
  }
}
provider "holdfast" {
  max_retries = 1
${extra}}
`;
}

/** HCL written as is, for values that are not strings or numbers (`{ app = "pg" }`). */
export const hcl = (text: string) => ({ hcl: text });

/** A `holdfast_volume` resource block from attribute lines. */
export function volume(label: string, attributes: Record<string, string | number | { hcl: string }>): string {
  const lines = Object.entries(attributes).map(([name, value]) => {
    const text =
      typeof value === "object" ? value.hcl : typeof value === "number" ? value : JSON.stringify(value);
    return `  ${name} = ${text}`;
  });
  return `resource "holdfast_volume" "${label}" {\n${lines.join("\n")}\n}\n`;
}

export const GIB = 2 ** 30;

/** A volume as GET /v1/volumes lists it: the fields the provider tests read. */
export interface ApiVolume {
  id: string;
  name: string;
  size: number;
  repl: number;
  fs: string;
  labels: Record<string, string>;
}

/**
 * One real agent (local store) for a test file, and for each test a fresh Terraform working directory pointed at
 * it. After each test the directory goes and every volume is deleted: a failed test leaves nothing the next one sees.
 */
export class ProviderFixture {
  agent!: AgentProcess;
  tf!: TerraformDir;

  constructor(suite: Test) {
    suite.before(async () => {
      await buildProvider();
      this.agent = await AgentProcess.start();
    });
    suite.before.each(async () => {
      this.tf = await TerraformDir.create({ HOLDFAST_API: this.agent.url, HOLDFAST_TOKEN: this.agent.token });
    });
    suite.after.each(async () => {
      await this.tf.remove();
      for (const v of await this.volumes()) await this.agent.api("DELETE", `/v1/volumes/${v.id}`);
    });
    suite.after(async () => {
      await this.agent?.destroy();
    });
  }

  async volumes(): Promise<ApiVolume[]> {
    return (await this.agent.api("GET", "/v1/volumes")).body as ApiVolume[];
  }

  async byName(name: string): Promise<ApiVolume | undefined> {
    return (await this.volumes()).find((v) => v.name === name);
  }
}
