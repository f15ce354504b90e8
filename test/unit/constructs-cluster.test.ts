import { test } from "uvu";
import * as assert from "uvu/assert";
import { AwsProvider, HoldfastProvider, Testing } from "../../constructs/cdktf.js";
import {
  AwsNodeGroup,
  HoldfastCluster,
  type HoldfastClusterProps,
  OnPremNodeGroup,
} from "../../constructs/index.js";
import { fakeArtifact, resources, synth, testStack, warnings } from "../support/constructs.js";

const artifactPath = fakeArtifact();
const base: HoldfastClusterProps = {
  clusterName: "prod",
  metadata: { etcdEndpoints: ["10.0.0.5:2379"] },
  artifactPath,
};

function hosts(zones: string[]) {
  return zones.map((zone, i) => ({ name: `h${i + 1}`, address: `192.168.10.${i + 1}`, zone }));
}

test("an on-prem-only cluster creates no AWS resource and outputs the hosts' API endpoints", () => {
  // WHEN
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", { ...base, ports: { api: 9100 } });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a", "b"]) });
  const json = synth(stack);
  // THEN
  assert.equal(json.resource ?? {}, {});
  assert.equal(json.output.prod_api_endpoints?.value, [
    "https://192.168.10.1:9100",
    "https://192.168.10.2:9100",
  ]);
  assert.is(cluster.store, "etcds://10.0.0.5:2379");
});

const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

test("providerConfig: the first API endpoint over https and the cluster CA, never the token; the CA is an output", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", { ...base, caCertificate: CA_PEM });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a", "b"]) });
  new HoldfastProvider(stack, "holdfast", cluster.providerConfig());
  const json = synth(stack);
  assert.equal(json.provider?.holdfast, [{ endpoint: "https://192.168.10.1:9001", ca_certificate: CA_PEM }]);
  assert.is(json.output.prod_ca_certificate?.value, CA_PEM);

  const without = testStack();
  const plain = new HoldfastCluster(without, "cluster", base);
  new OnPremNodeGroup(without, "dc1", { cluster: plain, hosts: hosts(["a"]) });
  assert.equal(plain.providerConfig().caCertificate, undefined);
  assert.is(synth(without).output.prod_ca_certificate, undefined);
});

test("a caCertificate that is not PEM fails synthesis naming it", () => {
  assert.throws(
    () => new HoldfastCluster(testStack(), "cluster", { ...base, caCertificate: "ca.crt" }),
    /^caCertificate: must be a PEM certificate/,
  );
});

test("the cluster id is stable for a name and store, and differs on another store", () => {
  const ids = ["10.0.0.5:2379", "10.0.0.5:2379", "10.9.9.9:2379"].map((endpoint) => {
    const stack = testStack();
    const cluster = new HoldfastCluster(stack, "cluster", {
      ...base,
      metadata: { etcdEndpoints: [endpoint] },
    });
    new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a"]) });
    return synth(stack).output.prod_cluster_id?.value;
  });
  assert.is(ids[0], ids[1]);
  assert.is.not(ids[0], ids[2]);
});

test("embedded etcd: the store lists the first three on-prem hosts' client URLs", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    ...base,
    metadata: { embeddedEtcd: { members: 3 } },
  });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a", "b", "c", "a"]) });
  synth(stack);
  assert.is(cluster.store, "etcds://192.168.10.1:2379,192.168.10.2:2379,192.168.10.3:2379");
});

test("on-prem hosts reach AWS nodes on the API and replication ports, from their own address only", () => {
  const stack = testStack();
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", base);
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["dc1"]) });
  new AwsNodeGroup(stack, "cloud", {
    cluster,
    vpcId: "vpc-1",
    subnets: [{ subnetId: "subnet-a", availabilityZone: "us-east-1a" }],
  });
  const text = Testing.synth(stack, true);
  const rules = resources(JSON.parse(text), "aws_vpc_security_group_ingress_rule").filter(
    (r) => r.cidr_ipv4 === "192.168.10.1/32",
  );
  assert.equal(rules.map((r) => r.from_port).sort(), [9001, 9002]);
});

test("a client CIDR of 0.0.0.0/0 is a warning, and synthesis goes on", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", { ...base, clientCidrs: ["0.0.0.0/0"] });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a"]) });
  synth(stack);
  assert.equal(warnings(stack), [
    "clientCidrs: 0.0.0.0/0 opens the Holdfast API to every address; list your clients' networks instead",
  ]);
});

test("replicas greater than the zones with spread: zones is an error at synthesis", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    ...base,
    replication: { replicas: 3, spread: "zones" },
  });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a", "b", "b", "a"]) });
  assert.throws(
    () => synth(stack),
    /replication\.replicas: 3 replicas spread over zones need 3 zones; the cluster's node groups cover 2/,
  );
});

test("the same replicas spread over nodes fit four hosts", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    ...base,
    replication: { replicas: 3, spread: "nodes" },
  });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a", "b", "b", "a"]) });
  synth(stack);
});

test("three embedded etcd members need three on-prem hosts", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    ...base,
    metadata: { embeddedEtcd: { members: 3 } },
  });
  new OnPremNodeGroup(stack, "dc1", { cluster, hosts: hosts(["a"]) });
  assert.throws(() => synth(stack), /metadata\.embeddedEtcd\.members: 3 etcd members need 3 on-prem hosts/);
});

test("a cluster without node groups fails synthesis", () => {
  const stack = testStack();
  new HoldfastCluster(stack, "cluster", base);
  assert.throws(() => synth(stack), /prod: no node group joins this cluster/);
});

for (const [name, props, message] of [
  ["a bad name", { clusterName: "no spaces" }, /^clusterName: must be 1-63 letters/],
  ["a port out of range", { ports: { api: 70000 } }, /^ports\.api: must be a port number from 1 to 65535/],
  ["two services on one port", { ports: { api: 2379 } }, /^ports: each port must be different/],
  [
    "no etcd endpoint",
    { metadata: { etcdEndpoints: [] } },
    /^metadata\.etcdEndpoints: give at least one HOST:PORT/,
  ],
  ["an etcd endpoint without a port", { metadata: { etcdEndpoints: ["etcd1"] } }, /"etcd1" is not HOST:PORT/],
  ["four etcd members", { metadata: { embeddedEtcd: { members: 4 } } }, /members: must be 3 or 5/],
  ["a bad client CIDR", { clientCidrs: ["10.0.0.0"] }, /^clientCidrs: "10.0.0.0" is not a CIDR/],
  [
    "a missing artifact",
    { artifactPath: "/nonexistent/a.tar.gz" },
    /^artifactPath: .* does not exist: build it with/,
  ],
] as const) {
  test(`${name} fails with a clear message`, () => {
    assert.throws(
      () =>
        new HoldfastCluster(testStack(), "cluster", { ...base, ...(props as Partial<HoldfastClusterProps>) }),
      message,
    );
  });
}

test.run();
