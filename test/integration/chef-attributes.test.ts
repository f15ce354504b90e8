import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAgentConfig } from "../../agent/src/config/index.js";
import { AwsProvider, TerraformStack, Testing } from "../../constructs/cdktf.js";
import { AwsNodeGroup, type ChefNodeJson, HoldfastCluster, OnPremNodeGroup } from "../../constructs/index.js";
import { apiOverTls, HOLDFAST, ROOT, sh, stopChild } from "../support/agent-process.js";
import { fakeArtifact } from "../support/constructs.js";
import { devStoreArgs } from "../support/dev-cluster.js";

// No Chef client runs here (none in Debian or npm): the cookbook is checked with ruby -wc and rubocop, its helpers run
// under plain Ruby on real Ohai facts, and the contract that matters is proved with the real agent: the JSON the
// construct renders for a host is what `holdfast agent --config` reads, as is.
const exec = promisify(execFile);
const COOKBOOK = join(ROOT, "chef/cookbooks/holdfast");
const NET = "127.0.42";
const HOST_IP = `${NET}.60`;

let work = "";
let devDir = "";
let devToken = "";
let devCa = "";
let agent: ChildProcess | undefined;
let signer: ChildProcess | undefined;

async function rubyFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith(".rb")).map((e) => join(e.parentPath, e.name));
}

/** The Chef JSON OnPremNodeGroup renders for one host of a cluster on the dev cluster's etcd. */
function render(dataDir: string): { json: ChefNodeJson; group: OnPremNodeGroup } {
  const stack = new TerraformStack(Testing.app(), "chef");
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "dev",
    metadata: { etcdEndpoints: [`${NET}.10:2379`] },
    artifactPath: fakeArtifact(),
    agent: { dataDir, mountDir: join(dataDir, "mnt"), pluginSocket: "none", csiSocket: "none" },
  });
  const group = new OnPremNodeGroup(stack, "dc1", {
    cluster,
    hosts: [{ name: "onprem1", address: HOST_IP, zone: "dc1", rack: "r7" }],
  });
  Testing.synth(stack, true);
  return { json: group.chefJson("onprem1"), group };
}

/** Runs Ruby with the cookbook's library loaded; `script` sees ARGV. */
async function ruby(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec("ruby", [
    "-r",
    join(COOKBOOK, "libraries/helpers.rb"),
    "-e",
    script,
    ...args,
  ]);
  return stdout;
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), "hf-chef-"));
  devDir = join(work, "dev");
  const dev = JSON.parse(
    await sh(HOLDFAST, ["dev", "up", "--dir", devDir, "--nodes", "1", "--net", NET, "--output", "json"]),
  ) as { token: string; ca: string };
  devToken = dev.token;
  devCa = await readFile(dev.ca, "utf8");
});

test.after(async () => {
  await stopChild(agent, "SIGTERM");
  await stopChild(signer, "SIGTERM");
  if (devDir) await sh(HOLDFAST, ["dev", "down", "--dir", devDir]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

test("every Ruby file of the cookbook passes ruby -wc, and rubocop finds nothing", async () => {
  const files = await rubyFiles(COOKBOOK);
  assert.ok(files.length >= 9, files.join(" "));
  for (const file of files) {
    const { stdout, stderr } = await exec("ruby", ["-wc", file]);
    assert.is(stdout.trim(), "Syntax OK", file);
    assert.is(stderr, "", `${file} warns: ${stderr}`);
  }
  const { stdout } = await exec("rubocop", ["--format", "simple"], { cwd: COOKBOOK });
  assert.match(stdout, /no offenses detected/);
});

test("each resource is unified_mode with described properties, and has its document", async () => {
  for (const name of ["installation", "config", "service", "volume"]) {
    const { stdout } = await exec("cat", [join(COOKBOOK, "resources", `${name}.rb`)]);
    assert.match(stdout, /^unified_mode true$/m, name);
    assert.match(stdout, new RegExp(`^provides :holdfast_${name}$`, "m"));
    const properties = stdout.match(/^property :\w+/gm) ?? [];
    const described = stdout.match(/^property :[\s\S]*?description: /gm) ?? [];
    assert.is(described.length, properties.length, `${name}: every property has a description`);
    await exec("test", ["-s", join(COOKBOOK, "documentation", `holdfast_${name}.md`)]);
  }
});

test("no attribute, cookbook file or rendered JSON holds the CA key: the node gets a join token file instead", async () => {
  const { json } = render(join(work, "z"));
  const text = JSON.stringify(json);
  assert.not.match(text, /PRIVATE KEY|"ca"|ca\.key|cluster-ca/);
  assert.is(json.holdfast.joinToken, join(work, "z", "join-token"));
  for (const file of await rubyFiles(COOKBOOK)) {
    const source = await readFile(file, "utf8");
    assert.not.match(source, /ca\.key|cluster', 'issue'|secrets\['ca'\]|property :ca\b/, file);
  }
  const config = await readFile(join(COOKBOOK, "resources/config.rb"), "utf8");
  assert.match(config, /property :join_token, String,\s+sensitive: true/);
  assert.match(
    config,
    /'join-token'\) do\n\s+content "#\{new_resource\.join_token\}\\n"\n\s+mode '0600'\n\s+sensitive true/,
  );
});

test("the rendered JSON, as is, configures a real agent that enrolls with its join token and joins the cluster", async () => {
  const dataDir = join(work, "onprem1");
  const { json } = render(dataDir);
  // What holdfast_config does with the data bag's `etcd`: the cluster's etcd client certificate (here the dev
  // cluster's), written where the rendered config says.
  for (const [setting, name] of [
    ["etcdCa", "ca.crt"],
    ["etcdCert", "client.crt"],
    ["etcdKey", "client.key"],
  ] as const) {
    const path = json.holdfast[setting] ?? "";
    assert.ok(path.startsWith(`${dataDir}/etcd/`), `${setting}: ${path}`);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await copyFile(join(devDir, "etcd", "client", name), path);
  }
  const file = join(work, "onprem1.json");
  await writeFile(file, JSON.stringify(json, null, 2));
  // What the operator and the cookbook do: a join token for the host into the data bag, written to <dataDir>/join-token;
  // the signer runs where the CA is.
  const store = devStoreArgs(devDir, `https://${NET}.10:2379`);
  const made = JSON.parse(
    await sh(HOLDFAST, [
      "cluster",
      "join-token",
      "create",
      "--node",
      "onprem1",
      ...store,
      "--output",
      "json",
    ]),
  ) as { token: string };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(join(dataDir, "join-token"), `${made.token}\n`, { mode: 0o600 });
  signer = spawn(HOLDFAST, ["cluster", "sign", "--ca-dir", join(devDir, "ca"), ...store, "--watch"], {
    stdio: "ignore",
  });
  agent = spawn(HOLDFAST, ["agent", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  agent.stdout?.on("data", (d) => {
    log += d;
  });
  agent.stderr?.on("data", (d) => {
    log += d;
  });
  let nodes: { id: string; zone: string; rack: string; api: string; state: string }[] = [];
  // A readiness wait, not a timing: 60 s on a loaded machine.
  for (let deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    if (agent.exitCode !== null) break;
    const res = await apiOverTls(`https://${NET}.11:9001/v1/nodes`, { token: devToken, ca: devCa });
    nodes = res.body as typeof nodes;
    if (nodes.some((n) => n.id === "onprem1" && n.state === "up")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const joined = nodes.find((n) => n.id === "onprem1");
  assert.ok(joined, `onprem1 did not join: ${JSON.stringify(nodes)}\n${log}`);
  assert.equal([joined.zone, joined.rack, joined.state], ["dc1", "r7", "up"]);
  assert.match(joined.api, new RegExp(HOST_IP.replaceAll(".", "\\.")));
  assert.equal((await readdir(join(dataDir, "tls"))).sort(), ["ca.crt", "node.crt", "node.key"]);
});

test("a rendered JSON without a required key is refused with the key named", async () => {
  const { json } = render(join(work, "x"));
  const { dataDir: _, ...withoutDataDir } = json.holdfast;
  const file = join(work, "missing.json");
  await writeFile(file, JSON.stringify({ ...json, holdfast: withoutDataDir }));
  const err = await exec(HOLDFAST, ["agent", "--config", file]).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
  assert.ok(err, "the agent started without a dataDir");
  assert.is(err.code, 2);
  assert.is(err.stderr.trim(), "holdfast: dataDir: is required: the directory for the agent's state");
});

test("the cookbook writes node['holdfast'] unchanged, and fills a missing node id and address from real Ohai facts", async () => {
  const { json } = render(join(work, "y"));
  const { stdout: ohai } = await exec("ohai", ["-l", "fatal", "hostname", "ipaddress"]);
  const [hostname, ipaddress] = [...ohai.matchAll(/"([^"]+)"/g)].map((m) => m[1] as string);
  assert.ok(hostname && ipaddress, ohai);
  const write =
    "print Holdfast::Helpers.config_json(Holdfast::Helpers.agent_config(JSON.parse(ARGV[0]), JSON.parse(ARGV[1])))";
  const facts = JSON.stringify({ hostname, ipaddress });
  const written = await ruby(write, JSON.stringify(json.holdfast), facts);
  assert.equal(JSON.parse(written), json.holdfast);

  const { nodeId: _n, api: _a, ...bare } = json.holdfast;
  const file = join(work, "from-ohai.json");
  await writeFile(file, await ruby(write, JSON.stringify(bare), facts));
  const config = await loadAgentConfig({ file, flags: {} });
  assert.is(config.nodeId, hostname);
  assert.is(config.api, `${ipaddress}:9001`);
});

test("the cookbook's systemd unit is the one the AWS user data writes", async () => {
  const stack = new TerraformStack(Testing.app(), "unit");
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "dev",
    metadata: { etcdEndpoints: [`${NET}.10:2379`] },
    artifactPath: fakeArtifact(),
  });
  const group = new AwsNodeGroup(stack, "storage", {
    cluster,
    vpcId: "vpc-1",
    subnets: [{ subnetId: "subnet-a", availabilityZone: "us-east-1a" }],
  });
  const script = group.bootScript();
  const fromAws = /<<UNIT\n([\s\S]*?\n)UNIT\n/.exec(script)?.[1]?.replaceAll("$ROOT", "");
  const fromChef = await ruby(
    "print Holdfast::Helpers.unit_content('/opt/holdfast', '/etc/holdfast/agent.json')",
  );
  assert.is(fromChef, fromAws);
});

test("the cookbook's size parser reads sizes as the volume spec does", async () => {
  const out = await ruby(
    'print ARGV.map { |s| Holdfast::Helpers.parse_size(s).inspect }.join(" ")',
    "20G",
    "512M",
    "2",
    "4096B",
    "1.5G",
  );
  assert.is(out, `${20 * 2 ** 30} ${512 * 2 ** 20} ${2 * 2 ** 30} 4096 nil`);
});

test.run();
