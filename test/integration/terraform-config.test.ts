import { copyFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { freePort } from "../support/agent-process.js";
import { EXAMPLES, GIB, ProviderFixture, providerBlock, volume } from "./terraform-support.js";

// The real `terraform` CLI (1.11) runs the built provider against a real agent with a local store: bad
// configuration and its diagnostics, TF_LOG output, and the examples in providers/examples.
// The lifecycle itself is in terraform-provider.test.ts.

const fx = new ProviderFixture(test);

/** Plans `body` after the provider block and returns Terraform's error output, which must say it failed. */
async function planError(body: string, provider = ""): Promise<string> {
  await fx.tf.write({ "main.tf": providerBlock(provider) + body });
  const result = await fx.tf.plan();
  assert.is(result.code, 1, result.stdout);
  return result.stderr;
}

test("bad configuration: diagnostics point at the attribute at fault", async () => {
  const replicas = await planError(volume("x", { name: "tf-x", size: "1G", replicas: 4 }));
  assert.match(replicas, /Error: Invalid replicas[\s\S]*replicas = 4[\s\S]*repl: must be 1, 2 or 3/);

  const spec = await planError(volume("x", { spec: "name=tf-x,size=12Q" }));
  assert.match(
    spec,
    /Error: Invalid volume spec[\s\S]*spec = "name=tf-x,size=12Q"[\s\S]*"12Q" is not a size/,
  );

  const both = await planError(volume("x", { spec: "name=tf-x", size: "1G" }));
  assert.match(
    both,
    /Error: Conflicting volume attributes[\s\S]*size = "1G"[\s\S]*cannot be set together with "spec"/,
  );

  const together = await planError(volume("x", { name: "tf-x", size: 4096, block_size: 65536 }));
  assert.match(together, /size: must be a multiple of the block size/);

  const noName = await planError(volume("x", { size: "1G" }));
  assert.match(noName, /Error: Missing volume name/);

  const timeout = await planError(
    `resource "holdfast_volume" "x" {\n  name = "tf-x"\n  timeouts {\n    create = "soon"\n  }\n}\n`,
  );
  assert.match(timeout, /Error: Invalid duration[\s\S]*create = "soon"/);

  assert.equal(await fx.volumes(), [], "nothing was created");
});

test("bad provider configuration: wrong token, unreachable endpoint, malformed settings", async () => {
  const data = 'data "holdfast_cluster" "c" {}\n';
  const token = await planError(data, '  token = "not-the-token"\n');
  assert.match(
    token,
    /Error: Token refused[\s\S]*token\s+= "not-the-token"|Error: Token refused[\s\S]*token/,
  );
  assert.not.match(token, fx.agent.token);

  const port = await freePort();
  const unreachable = await planError(
    data,
    `  endpoint = "http://127.0.0.1:${port}"\n  request_timeout = "2s"\n`,
  );
  assert.match(
    unreachable,
    /Error: Cannot reach the Holdfast agent[\s\S]*endpoint\s+= "http:\/\/127\.0\.0\.1:\d+"[\s\S]*ECONNREFUSED/,
  );

  const url = await planError(data, '  endpoint = "ftp://example"\n');
  assert.match(url, /Error: Invalid endpoint[\s\S]*endpoint = "ftp:\/\/example"/);

  const duration = await planError(data, '  request_timeout = "forever"\n');
  assert.match(duration, /Error: Invalid request_timeout/);

  const ca = await planError(data, '  ca_file = "/nonexistent/ca.pem"\n');
  assert.match(ca, /Error: Cannot read ca_file[\s\S]*ca_file = "\/nonexistent\/ca.pem"/);
});

const EXAMPLE_DIRS = [
  "provider",
  "resources/holdfast_volume",
  "data-sources/holdfast_cluster",
  "data-sources/holdfast_volume",
];

test("TF_LOG=DEBUG shows the provider's hclog lines, and never its token", async () => {
  await fx.tf.write({ "main.tf": `${providerBlock()}data "holdfast_cluster" "c" {}\n` });
  const result = await fx.tf.runWith({ TF_LOG: "DEBUG" }, "plan", "-no-color", "-input=false");
  assert.is(result.code, 0, result.stderr);
  const log = result.stdout + result.stderr;
  assert.match(log, /\[DEBUG\] provider\.terraform-provider-holdfast: serving:/);
  assert.match(log, /provider\.terraform-provider-holdfast: rpc: .*rpc=ConfigureProvider/);
  assert.match(
    log,
    /provider\.terraform-provider-holdfast: request: .*url=http:\/\/127\.0\.0\.1:\d+\/v1\/cluster/,
  );
  assert.not.match(log, fx.agent.token, "the token (from HOLDFAST_TOKEN) appears nowhere");
});

test("the examples in providers/examples apply, read back and destroy", async () => {
  await fx.tf.write({});
  for (const dir of EXAMPLE_DIRS) {
    for (const name of await readdir(join(EXAMPLES, dir)))
      if (name.endsWith(".tf"))
        await copyFile(join(EXAMPLES, dir, name), join(fx.tf.dir, `${dir.replaceAll("/", "-")}-${name}`));
  }
  const vars = [`-var=holdfast_endpoint=${fx.agent.url}`, `-var=holdfast_token=${fx.agent.token}`];
  const out = await fx.tf.apply(...vars);
  assert.match(out, "Apply complete! Resources: 2 added");
  assert.match(out, /nodes_up = \[\s*"node1",?\s*\]/);
  assert.match(out, /pgdata_replicas_on = tolist\(\[\s*"node1",?\s*\]\)/);
  const pg = await fx.byName("pgdata");
  assert.equal([pg?.size, pg?.labels], [20 * GIB, { app: "postgres", tier: "db" }]);
  assert.is((await fx.byName("cache"))?.fs, "xfs");
  await fx.tf.ok("destroy", "-no-color", "-input=false", "-auto-approve", ...vars);
  assert.equal(await fx.volumes(), []);
});

test.run();
