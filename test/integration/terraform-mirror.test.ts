import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, ROOT, sh } from "../support/agent-process.js";
import { providerBlock, TerraformDir, volume } from "./terraform-support.js";

// Installation as a user does it offline: scripts/build-provider-mirror.mjs lays the provider out as a filesystem
// mirror, and the real `terraform init` installs it from there (no registry, no dev_overrides), copying the
// one-file provider into .terraform/ where no package.json is near it.

let agent: AgentProcess;
let tf: TerraformDir;

const byName = async (name: string) =>
  ((await agent.api("GET", "/v1/volumes")).body as Array<{ name: string }>).find((v) => v.name === name);

test.before(async () => {
  agent = await AgentProcess.start();
  tf = await TerraformDir.create({});
});

test.after(async () => {
  await tf?.remove();
  await agent?.destroy();
});

test("a filesystem mirror: terraform init installs the provider offline, then apply and destroy", async () => {
  const mirror = join(tf.dir, "..", "mirror");
  await sh(process.execPath, [join(ROOT, "scripts/build-provider-mirror.mjs"), mirror]);
  const initialized = await TerraformDir.create(
    { HOLDFAST_API: agent.url, HOLDFAST_TOKEN: agent.token },
    join(mirror, "terraformrc"),
  );
  try {
    const { version } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
    await initialized.write({
      "main.tf":
        providerBlock().replace(
          'source = "holdfast/holdfast"',
          `source = "holdfast/holdfast", version = "${version}"`,
        ) + volume("m", { name: "tf-mirror", size: "1G" }),
    });
    const init = await initialized.ok("init", "-no-color", "-input=false");
    assert.match(init, `Installing holdfast/holdfast v${version}`);
    assert.match(await initialized.apply(), "Apply complete! Resources: 1 added");
    assert.ok(await byName("tf-mirror"));
    await initialized.ok("destroy", "-no-color", "-input=false", "-auto-approve");
    assert.is(await byName("tf-mirror"), undefined);
  } finally {
    await initialized.remove();
  }
});

test.run();
