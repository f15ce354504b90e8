import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TerraformOutput, TerraformStack, Testing } from "cdktf";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  DataHoldfastCluster,
  DataHoldfastVolume,
  HoldfastProvider,
  HoldfastVolume,
} from "../../providers/cdktf/index.js";
import { generateBindings, OUTPUT } from "../../providers/tools/gen-cdktf.js";
import { DOCS, generateDocs } from "../../providers/tools/gen-docs.js";
import { readProviderSchema, VERSION } from "../../providers/tools/provider-schema.js";
import { AgentProcess } from "../support/agent-process.js";
import { buildProvider, TerraformDir } from "./terraform-support.js";

// What is generated from the built provider's schema, as the real terraform CLI reports it: the CDKTF bindings in
// providers/cdktf and the docs in providers/docs. A stack written with the bindings synthesizes to JSON that
// terraform applies against a real agent.

let agent: AgentProcess;

test.before(async () => {
  await buildProvider();
  agent = await AgentProcess.start();
});

test.after(async () => {
  await agent?.destroy();
});

test("the committed bindings and docs equal a fresh generation from the provider's schema", async () => {
  const schema = await readProviderSchema();
  const committed = await readFile(OUTPUT, "utf8");
  assert.ok(
    generateBindings(schema) === committed,
    "providers/cdktf/generated.ts is stale: run `node --import tsx providers/tools/gen-cdktf.ts`",
  );
  assert.match(committed, "export class HoldfastVolume extends cdktf.TerraformResource");
  assert.match(committed, "export class HoldfastProvider extends cdktf.TerraformProvider");
  assert.match(committed, "readonly size?: number | string;");
  const pages = generateDocs(schema);
  assert.equal(Object.keys(pages).sort(), [
    "data-sources/cluster.md",
    "data-sources/volume.md",
    "index.md",
    "resources/volume.md",
  ]);
  for (const [path, text] of Object.entries(pages)) {
    const onDisk = await readFile(join(DOCS, path), "utf8").catch(() => "");
    assert.ok(
      text === onDisk,
      `providers/docs/${path} is stale: run \`node --import tsx providers/tools/gen-docs.ts\``,
    );
  }
  assert.match(pages["resources/volume.md"] ?? "", "terraform import holdfast_volume.pgdata pgdata");
});

test("a stack written with the bindings synthesizes, applies and destroys", async () => {
  // WHEN
  const stack = new TerraformStack(Testing.app(), "volumes");
  new HoldfastProvider(stack, "holdfast", { endpoint: agent.url, token: agent.token, maxRetries: 1 });
  const pg = new HoldfastVolume(stack, "pg", {
    name: "cdk-pg",
    size: "2G",
    labels: { app: "pg" },
    shared: false,
    timeouts: { create: "2m" },
  });
  const cache = new HoldfastVolume(stack, "cache", { spec: "name=cdk-cache,size=1G,fs=xfs" });
  const read = new DataHoldfastVolume(stack, "read", { name: pg.name });
  const cluster = new DataHoldfastCluster(stack, "cluster");
  new TerraformOutput(stack, "pg_id", { value: pg.id });
  new TerraformOutput(stack, "read_size", { value: read.size });
  new TerraformOutput(stack, "cache_fs", { value: cache.filesystem });
  new TerraformOutput(stack, "cluster_store", { value: cluster.store });
  const json = Testing.synth(stack);

  // THEN
  const synthesized = JSON.parse(json) as {
    terraform: { required_providers: Record<string, unknown> };
    resource: { holdfast_volume: Record<string, Record<string, unknown>> };
  };
  // cdktf deploy refuses a stack whose required provider has no version.
  assert.equal(synthesized.terraform.required_providers.holdfast, {
    source: "registry.terraform.io/holdfast/holdfast",
    version: VERSION,
  });
  assert.equal(synthesized.resource.holdfast_volume.pg?.labels, { app: "pg" });
  assert.equal(synthesized.resource.holdfast_volume.pg?.timeouts, { create: "2m" });
  const tf = await TerraformDir.create({});
  try {
    await writeFile(join(tf.dir, "main.tf.json"), json);
    await tf.apply();
    const outputs = JSON.parse(await tf.ok("output", "-json")) as Record<string, { value: unknown }>;
    const made = (await agent.api("GET", "/v1/volumes/cdk-pg")).body as {
      id: string;
      size: number;
      labels: unknown;
    };
    assert.is(outputs.pg_id?.value, made.id);
    assert.is(outputs.read_size?.value, "2G");
    assert.is(outputs.cache_fs?.value, "xfs");
    assert.is(outputs.cluster_store?.value, "local");
    assert.equal([made.size, made.labels], [2 * 2 ** 30, { app: "pg" }]);
    assert.is((await tf.plan()).code, 0);
    await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
    assert.equal((await agent.api("GET", "/v1/volumes")).body, []);
  } finally {
    await tf.remove();
  }
});

test.run();
