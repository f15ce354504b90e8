import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess } from "../support/agent-process.js";
import { buildProvider, providerBlock, TerraformDir } from "./terraform-support.js";

// Terraform's default parallelism (10) against one real agent: ten volumes created and destroyed in one apply,
// each with its own size, through the built provider (providers/bin, through dev_overrides).

let agent: AgentProcess;
let tf: TerraformDir;

const volumes = async () =>
  (await agent.api("GET", "/v1/volumes")).body as Array<{ id: string; name: string; size: number }>;
const GIB = 2 ** 30;

test.before(async () => {
  await buildProvider();
  agent = await AgentProcess.start();
  tf = await TerraformDir.create({ HOLDFAST_API: agent.url, HOLDFAST_TOKEN: agent.token });
});

test.after(async () => {
  await tf?.remove();
  await agent?.destroy();
});

test("ten volumes created and destroyed in one apply at parallelism 10", async () => {
  await tf.write({
    "main.tf": `${providerBlock()}
resource "holdfast_volume" "many" {
  count = 10
  name  = "tf-many-\${count.index}"
  size  = "\${count.index + 1}G"
}
`,
  });
  await tf.apply("-parallelism=10");
  const made = (await volumes()).filter((v) => v.name.startsWith("tf-many-"));
  assert.is(made.length, 10);
  for (const v of made) assert.is(v.size, (Number(v.name.slice("tf-many-".length)) + 1) * GIB, v.name);
  assert.is((await tf.plan()).code, 0);
  await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve", "-parallelism=10");
  assert.equal(await volumes(), []);
});

test.run();
