import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HOLDFAST, ROOT, sh } from "../support/agent-process.js";

// GitOps for real: cdktf-cli deploys examples/volumes-gitops (HoldfastVolume over the holdfast provider, installed
// from a filesystem mirror) against a local dev cluster. Every volume there has repl=1.
const exec = promisify(execFile);
const NET = "127.0.41";
const EXAMPLE = join(ROOT, "examples/volumes-gitops");

let work = "";
let devDir = "";
let env: NodeJS.ProcessEnv = {};

/** `npx cdktf ARGS` in the example's directory; returns exit code and output, never throws. */
async function cdktf(args: string[]) {
  return exec("npx", ["cdktf", ...args, "--skip-provider-lock", "--no-color"], {
    cwd: EXAMPLE,
    env,
    maxBuffer: 16 * 1024 * 1024,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
}

async function volumes(): Promise<
  { name: string; id: string; size: number; labels: Record<string, string> }[]
> {
  return JSON.parse(await sh(HOLDFAST, ["volume", "list", "--output", "json"]));
}

/** A fresh start: no state, no provider lock from an older provider build. */
async function clean(): Promise<void> {
  await rm(join(EXAMPLE, "cdktf.out"), { recursive: true, force: true });
  await exec("sh", ["-c", `rm -f ${EXAMPLE}/terraform.volumes-gitops.tfstate*`]);
}

test.before(async () => {
  await clean();
  work = await mkdtemp(join(tmpdir(), "hf-gitops-"));
  devDir = join(work, "dev");
  const dev = JSON.parse(
    await sh(HOLDFAST, ["dev", "up", "--dir", devDir, "--nodes", "1", "--net", NET, "--output", "json"]),
  ) as { token: string; ca: string };
  const { stdout } = await exec("node", [
    join(ROOT, "scripts/build-provider-mirror.mjs"),
    join(work, "mirror"),
  ]);
  assert.match(stdout, /mirror ready/);
  env = {
    ...process.env,
    TF_CLI_CONFIG_FILE: join(work, "mirror/terraformrc"),
    HOLDFAST_API: `https://${NET}.11:9001`,
    HOLDFAST_TOKEN: dev.token,
    HOLDFAST_CA: dev.ca,
    CHECKPOINT_DISABLE: "1",
    CI: "1",
  };
  process.env.HOLDFAST_API = env.HOLDFAST_API;
  process.env.HOLDFAST_TOKEN = env.HOLDFAST_TOKEN;
  process.env.HOLDFAST_CA = env.HOLDFAST_CA;
});

test.after(async () => {
  if (devDir) await sh(HOLDFAST, ["dev", "down", "--dir", devDir]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
  await clean();
});

test("deploy creates the declared volumes, a second deploy changes nothing, drift shows, destroy removes them", async () => {
  const first = await cdktf(["deploy", "--auto-approve"]);
  assert.is(first.code, 0, first.out);
  assert.match(first.out, /Apply complete! Resources: 3 added, 0 changed, 0 destroyed/);
  const made = await volumes();
  assert.equal(made.map((v) => [v.name, v.size]).sort(), [
    ["cache", 512 * 2 ** 20],
    ["pgdata", 2 ** 30],
    ["web-logs", 256 * 2 ** 20],
  ]);
  assert.equal(made.find((v) => v.name === "pgdata")?.labels, { app: "postgres", tier: "db" });

  // The synthesized JSON is the same: no need to synthesize again.
  const second = await cdktf(["deploy", "--auto-approve", "--skip-synth"]);
  assert.is(second.code, 0, second.out);
  assert.match(second.out, /No changes|found no differences/);
  assert.match(second.out, /Resources: 0 added, 0 changed, 0 destroyed/);
  assert.equal(
    (await volumes()).map((v) => v.id).sort(),
    made.map((v) => v.id).sort(),
    "the same volumes, not new ones",
  );

  // Grown behind Terraform's back: the plan names the volume, what it is and what the config says.
  await sh(HOLDFAST, ["volume", "resize", "pgdata", "--size", "2G"]);
  const diff = await cdktf(["diff", "--skip-synth"]);
  assert.match(diff.out, /holdfast_volume\.pgdata/);
  assert.match(diff.out, /The volume is 2G \(2147483648 bytes\) and the configuration asks for 1G/);

  // The config still asks for 1G: destroy removes everything all the same.
  const destroy = await cdktf(["destroy", "--auto-approve"]);
  assert.is(destroy.code, 0, destroy.out);
  assert.match(destroy.out, /Destroy complete! Resources: 3 destroyed/);
  assert.equal(await volumes(), []);
});

test.run();
