import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HoldfastProvider, TerraformStack, Testing } from "../../constructs/cdktf.js";
import { HoldfastCluster, HoldfastVolume, OnPremNodeGroup } from "../../constructs/index.js";
import { AgentProcess, type TlsFixture, tlsFixture } from "../support/agent-process.js";
import { fakeArtifact } from "../support/constructs.js";
import { buildProvider, providerBlock, TerraformDir, volume } from "./terraform-support.js";

// The provider against an agent that serves its API over TLS with a cluster certificate (the API's default when a
// node has one): the real terraform CLI trusts it through ca_file, ca_certificate or HOLDFAST_CA, and a wrong CA is
// a diagnostic on the attribute that gave it. Net 127.0.100.0/24.
const HOST = "127.0.100.11";

let dir = "";
let agent: AgentProcess;
let tls: TlsFixture;
const caFile = () => tls.caFile;
const otherCaFile = () => tls.otherCaFile;

test.before(async () => {
  await buildProvider();
  dir = await mkdtemp(join(tmpdir(), "hf-tf-tls-"));
  tls = await tlsFixture(dir, HOST, "tftls");
  agent = await AgentProcess.start(["--tls-dir", tls.tlsDir], { host: HOST, caFile: caFile() });
});

test.after(async () => {
  await agent?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A Terraform directory aimed at the agent's https URL, with `env` on top (HOLDFAST_CA is not set by default). */
async function tfDir(env: NodeJS.ProcessEnv = {}) {
  return TerraformDir.create({
    HOLDFAST_API: agent.url,
    HOLDFAST_TOKEN: agent.token,
    HOLDFAST_CA: "",
    ...env,
  });
}

test("a volume applied and destroyed through https, the agent trusted by ca_file", async () => {
  assert.match(agent.url, /^https:/);
  const tf = await tfDir();
  try {
    await tf.write({
      "main.tf":
        providerBlock(`  ca_file = "${caFile()}"\n`) +
        volume("v", { name: "tf-tls", size: "16M", replicas: 1 }),
    });
    await tf.apply();
    const listed = (await agent.api("GET", "/v1/volumes")).body as Array<{ name: string }>;
    assert.equal(
      listed.map((v) => v.name),
      ["tf-tls"],
    );
    const again = await tf.plan();
    assert.is(again.code, 0, again.stdout + again.stderr);
    await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
    assert.equal((await agent.api("GET", "/v1/volumes")).body, []);
  } finally {
    await tf.remove();
  }
});

/**
 * `terraform plan` of the cluster data source with `settings` in the provider block and `env`; stderr with its
 * runs of white space made one space, as Terraform wraps diagnostics at 78 columns.
 */
async function plan(settings: string, env: NodeJS.ProcessEnv = {}) {
  const tf = await tfDir(env);
  try {
    await tf.write({ "main.tf": `${providerBlock(settings)}data "holdfast_cluster" "c" {}\n` });
    const result = await tf.plan();
    return { ...result, stderr: result.stderr.replace(/\s+/g, " ") };
  } finally {
    await tf.remove();
  }
}

test("ca_certificate (PEM) and HOLDFAST_CA trust the agent as ca_file does", async () => {
  const pem = JSON.stringify(await readFile(caFile(), "utf8"));
  const inline = await plan(`  ca_certificate = ${pem}\n`);
  assert.is(inline.code, 0, inline.stderr);
  const byEnv = await plan("", { HOLDFAST_CA: caFile() });
  assert.is(byEnv.code, 0, byEnv.stderr);
});

test("a wrong CA fails the plan with a diagnostic on the attribute that gave it", async () => {
  const wrongFile = await plan(`  ca_file = "${otherCaFile()}"\n`);
  assert.is(wrongFile.code, 1, wrongFile.stdout);
  assert.match(
    wrongFile.stderr,
    /Error: Untrusted agent certificate[\s\S]*ca_file = "[^"]*other-ca\.crt"[\s\S]*is not signed by the CA given in ca_file/,
  );

  const pem = JSON.stringify(await readFile(otherCaFile(), "utf8"));
  const wrongPem = await plan(`  ca_certificate = ${pem}\n`);
  assert.is(wrongPem.code, 1, wrongPem.stdout);
  assert.match(
    wrongPem.stderr,
    /Error: Untrusted agent certificate[\s\S]*ca_certificate[\s\S]*given in ca_certificate/,
  );

  const wrongEnv = await plan("", { HOLDFAST_CA: otherCaFile() });
  assert.is(wrongEnv.code, 1, wrongEnv.stdout);
  assert.match(wrongEnv.stderr, /Error: Untrusted agent certificate[\s\S]*given in HOLDFAST_CA/);

  // No CA at all: the system's roots do not know the cluster CA.
  const none = await plan("");
  assert.is(none.code, 1, none.stdout);
  assert.match(
    none.stderr,
    /Error: Untrusted agent certificate[\s\S]*set ca_certificate, ca_file or HOLDFAST_CA/,
  );

  const both = await plan(`  ca_file = "${caFile()}"\n  ca_certificate = "x"\n`);
  assert.is(both.code, 1, both.stdout);
  assert.match(both.stderr, /Error: Conflicting CA settings/);
});

test("a CDKTF stack whose provider is HoldfastCluster.providerConfig() applies through https with the cluster CA", async () => {
  const stack = new TerraformStack(Testing.app(), "tls");
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "tftls",
    metadata: { etcdEndpoints: ["127.0.0.1:2379"] },
    ports: { api: agent.port },
    artifactPath: fakeArtifact(),
    caCertificate: await readFile(caFile(), "utf8"),
  });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: [{ name: "node1", address: HOST, zone: "z" }] });
  new HoldfastProvider(stack, "holdfast", { ...cluster.providerConfig(), maxRetries: 1 });
  new HoldfastVolume(stack, "v", { volume: { name: "cdk-tls", size: "16M", repl: 1 } });
  // Only the token from the environment: endpoint and CA are in the synthesized JSON.
  const tf = await TerraformDir.create({ HOLDFAST_API: "", HOLDFAST_CA: "", HOLDFAST_TOKEN: agent.token });
  try {
    await writeFile(join(tf.dir, "main.tf.json"), Testing.synth(stack));
    await tf.apply();
    const listed = (await agent.api("GET", "/v1/volumes")).body as Array<{ name: string }>;
    assert.equal(
      listed.map((v) => v.name),
      ["cdk-tls"],
    );
    await tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
  } finally {
    await tf.remove();
  }
});

test("an http endpoint to the TLS port fails with a hint to use https", async () => {
  const r = await plan(`  endpoint = "${agent.url.replace("https:", "http:")}"\n`);
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /Error: Cannot reach the Holdfast agent[\s\S]*use https:\/\//);
});

test.run();
