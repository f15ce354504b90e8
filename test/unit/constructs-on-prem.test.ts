import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAgentConfig } from "../../agent/src/config/index.js";
import { HoldfastCluster, type OnPremHost, OnPremNodeGroup } from "../../constructs/index.js";
import { fakeArtifact, synth, testStack } from "../support/constructs.js";

const artifactPath = fakeArtifact();
const work = mkdtempSync(join(tmpdir(), "hf-onprem-"));
test.after(() => rmSync(work, { recursive: true, force: true }));
const HOSTS: OnPremHost[] = [
  { name: "db1", address: "10.1.0.11", zone: "dc1", rack: "r1", devices: ["/dev/sdb", "/dev/sdc"] },
  { name: "db2", address: "10.1.0.12", zone: "dc1", rack: "r2", pools: ["/srv/holdfast"] },
  { name: "db3", address: "10.1.0.13", zone: "dc2" },
];

function build(embedded = false) {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "onprem",
    metadata: embedded ? { embeddedEtcd: { members: 3 } } : { etcdEndpoints: ["10.1.0.5:2379"] },
    artifactPath,
    agent: { leaseTtl: 10 },
  });
  const group = new OnPremNodeGroup(stack, "hosts", {
    cluster,
    hosts: HOSTS,
    artifactUrl: "https://mirror.example/holdfast-agent-0.1.0.tar.gz",
  });
  return { stack, cluster, group };
}

test("each host's JSON holds its agent config under holdfast, and the cookbook's keys beside it", () => {
  // WHEN
  const { group, cluster, stack } = build();
  synth(stack);
  const db1 = group.chefJson("db1");
  // THEN
  assert.equal(db1.holdfast, {
    leaseTtl: 10,
    dataDir: "/var/lib/holdfast",
    store: "etcds://10.1.0.5:2379",
    etcdCa: "/var/lib/holdfast/etcd/ca.crt",
    etcdCert: "/var/lib/holdfast/etcd/client.crt",
    etcdKey: "/var/lib/holdfast/etcd/client.key",
    cluster: "onprem",
    nodeId: "db1",
    api: "10.1.0.11:9001",
    replication: "10.1.0.11:9002",
    pools: ["/var/lib/holdfast/pools/0", "/var/lib/holdfast/pools/1"],
    zone: "dc1",
    rack: "r1",
    joinToken: "/var/lib/holdfast/join-token",
  });
  // A join token file, never the CA key: nothing in a host's attributes is a key.
  assert.not.match(JSON.stringify(db1), /PRIVATE KEY|"ca"|ca\.key/);
  assert.equal(db1.holdfast_cookbook.devices, [
    { device: "/dev/sdb", pool: "/var/lib/holdfast/pools/0" },
    { device: "/dev/sdc", pool: "/var/lib/holdfast/pools/1" },
  ]);
  assert.is(db1.holdfast_cookbook.artifact_sha256, cluster.artifact.sha256);
  assert.is(db1.holdfast_cookbook.artifact_url, "https://mirror.example/holdfast-agent-0.1.0.tar.gz");
  assert.is(db1.holdfast_cookbook.etcd, undefined);
  assert.equal(db1.run_list, ["recipe[holdfast::default]"]);
  assert.equal(group.chefJson("db2").holdfast.pools, ["/srv/holdfast"]);
  assert.is(group.chefJson("db3").holdfast.pools, undefined, "no pools: the agent's default <dataDir>/pool");
  assert.is(group.chefJson("db3").holdfast.rack, "default");
});

test("the JSON output and the written files carry the same JSON", () => {
  const { group, stack } = build();
  const json = synth(stack);
  const output = json.output.onprem_hosts_chef_attributes?.value as Record<string, string>;
  assert.equal(Object.keys(output), ["db1", "db2", "db3"]);
  const dir = join(work, "json");
  const paths = group.writeChefAttributes(dir);
  assert.equal(
    paths,
    ["db1", "db2", "db3"].map((h) => join(dir, `${h}.json`)),
  );
  assert.equal(JSON.parse(readFileSync(paths[1] as string, "utf8")), JSON.parse(output.db2 as string));
});

test("the agent's own loader reads a rendered file as is", async () => {
  const { group, stack } = build();
  synth(stack);
  const [path] = group.writeChefAttributes(join(work, "agent"));
  const config = await loadAgentConfig({ file: path as string, flags: {} });
  assert.is(config.nodeId, "db1");
  assert.is(config.zone, "dc1");
  assert.is(config.leaseTtl, 10);
});

test("with embedded etcd, the first three hosts get an etcd member and one initial cluster", () => {
  const { group, stack } = build(true);
  synth(stack);
  const etcd = HOSTS.map((h) => group.chefJson(h.name).holdfast_cookbook.etcd);
  assert.equal(etcd[0], {
    name: "db1",
    address: "10.1.0.11",
    client_port: 2379,
    peer_port: 2380,
    initial_cluster: "db1=https://10.1.0.11:2380,db2=https://10.1.0.12:2380,db3=https://10.1.0.13:2380",
  });
  assert.is(etcd[2]?.initial_cluster, etcd[0]?.initial_cluster);
  assert.is(group.chefJson("db2").holdfast.store, "etcds://10.1.0.11:2379,10.1.0.12:2379,10.1.0.13:2379");
});

for (const [name, hosts, message] of [
  ["no hosts", [], /^hosts: at least one host is required/],
  [
    "a host name with a space",
    [{ name: "db 1", address: "10.0.0.1", zone: "a" }],
    /^hosts\[0\]\.name: must be/,
  ],
  [
    "a host name for an address",
    [{ name: "db1", address: "db1.lan", zone: "a" }],
    /"db1.lan" is not an IP address/,
  ],
  [
    "one address twice",
    [
      { name: "a", address: "10.0.0.1", zone: "a" },
      { name: "b", address: "10.0.0.1", zone: "a" },
    ],
    /^hosts\[1\]: 10.0.0.1 appears twice/,
  ],
  [
    "a relative device path",
    [{ name: "a", address: "10.0.0.1", zone: "a", devices: ["sdb"] }],
    /^hosts\[0\]\.devices: "sdb" is not an absolute path/,
  ],
] as const) {
  test(`${name} fails with a clear message`, () => {
    const stack = testStack();
    const cluster = new HoldfastCluster(stack, "cluster", {
      clusterName: "x",
      metadata: { etcdEndpoints: ["10.1.0.5:2379"] },
      artifactPath,
    });
    assert.throws(
      () => new OnPremNodeGroup(stack, "hosts", { cluster, hosts: hosts as unknown as OnPremHost[] }),
      message,
    );
  });
}

test("a bad zone fails synthesis naming the agent key", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "x",
    metadata: { etcdEndpoints: ["10.1.0.5:2379"] },
    artifactPath,
  });
  new OnPremNodeGroup(stack, "hosts", { cluster, hosts: [{ name: "a", address: "10.0.0.1", zone: "dc 1" }] });
  assert.throws(() => synth(stack), /agent\.zone: must be 1-63 letters/);
});

test.run();
