import { test } from "uvu";
import * as assert from "uvu/assert";
import { AwsProvider, Testing } from "../../constructs/cdktf.js";
import { AwsNodeGroup, type AwsNodeGroupProps, BOOT_TAGS, HoldfastCluster } from "../../constructs/index.js";
import { fakeArtifact, resources, synth, testStack, warnings } from "../support/constructs.js";

const artifactPath = fakeArtifact();
const SUBNETS = [
  { subnetId: "subnet-a", availabilityZone: "us-east-1a" },
  { subnetId: "subnet-b", availabilityZone: "us-east-1b" },
  { subnetId: "subnet-c", availabilityZone: "us-east-1c" },
];

function build(props: Partial<AwsNodeGroupProps> = {}, clientCidrs?: string[]) {
  const stack = testStack();
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "prod",
    metadata: { etcdEndpoints: ["10.0.0.5:2379", "10.0.1.5:2379"] },
    artifactPath,
    clientCidrs,
    tags: { team: "storage" },
  });
  const group = new AwsNodeGroup(stack, "storage", { cluster, vpcId: "vpc-1", subnets: SUBNETS, ...props });
  return { stack, cluster, group };
}

type Json = Record<string, unknown>;
const policyOf = (json: ReturnType<typeof synth>) =>
  JSON.parse(resources(json, "aws_iam_role_policy")[0]?.policy as string) as {
    Statement: { Action: string[]; Resource: string[] }[];
  };

test("one auto scaling group per zone, all from one launch template, with discovery tags", () => {
  // WHEN
  const { stack } = build({ nodesPerZone: 2 });
  const text = Testing.synth(stack, true);
  const json = JSON.parse(text);
  // THEN
  const groups = resources(json, "aws_autoscaling_group");
  assert.is(groups.length, 3);
  assert.equal(groups.map((g) => g.vpc_zone_identifier).sort(), [["subnet-a"], ["subnet-b"], ["subnet-c"]]);
  for (const g of groups) {
    assert.is(g.min_size, 2);
    assert.is(g.max_size, 2);
    assert.is(g.health_check_type, "EC2");
    assert.match(String((g.launch_template as Json).id), /aws_launch_template\.storage_launch-template/);
    const tags = Object.fromEntries((g.tag as { key: string; value: string }[]).map((t) => [t.key, t.value]));
    assert.is(tags["holdfast:cluster"], "prod");
    assert.is(tags["holdfast:node-group"], "storage");
    assert.is(tags.team, "storage");
  }
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_autoscaling_group", {
      name: "holdfast-prod-storage-us-east-1b",
    }),
  );
});

test("the launch template requires IMDSv2, encrypts every drive with the cluster key, and tags instances", () => {
  const { stack } = build({
    dataDrives: [
      { sizeGiB: 200, iops: 6000, throughput: 250 },
      { sizeGiB: 500, volumeType: "st1" },
    ],
  });
  const text = Testing.synth(stack, true);
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_launch_template", {
      metadata_options: {
        http_endpoint: "enabled",
        http_tokens: "required",
        http_put_response_hop_limit: 1,
        instance_metadata_tags: "enabled",
      },
    }),
  );
  const [template] = resources(JSON.parse(text), "aws_launch_template") as Json[];
  const drives = template?.block_device_mappings as { device_name: string; ebs: Json }[];
  assert.equal(
    drives.map((d) => [d.device_name, d.ebs.volume_size, d.ebs.volume_type, d.ebs.iops, d.ebs.throughput]),
    [
      ["/dev/sdf", 200, "gp3", 6000, 250],
      ["/dev/sdg", 500, "st1", undefined, undefined],
    ],
  );
  for (const d of drives) {
    assert.is(d.ebs.encrypted, "true");
    assert.match(String(d.ebs.kms_key_id), /aws_kms_key\.cluster_aws_key_.*\.arn/);
  }
  const specs = template?.tag_specifications as { resource_type: string; tags: Json }[];
  const instanceTags = specs.find((s) => s.resource_type === "instance")?.tags ?? {};
  assert.match(String(instanceTags[BOOT_TAGS.bucket]), /aws_s3_bucket\.cluster_aws_artifacts/);
  assert.match(
    String(instanceTags[BOOT_TAGS.tokenSecret]),
    /aws_secretsmanager_secret\.cluster_aws_token.*\.arn/,
  );
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_kms_key", { enable_key_rotation: true }),
    "the cluster key rotates",
  );
});

test("user data installs the checksummed artifact and holds no secret", () => {
  const { stack, group, cluster } = build();
  const json = synth(stack);
  const [template] = resources(json, "aws_launch_template");
  const script = Buffer.from(String(template?.user_data), "base64").toString();
  assert.is(script, group.bootScript());
  assert.ok(script.startsWith("#!/bin/bash\n"));
  assert.ok(script.includes(`ARTIFACT_SHA256='${cluster.artifact.sha256}'`));
  assert.match(script, /sha256sum -c/);
  assert.match(script, /X-aws-ec2-metadata-token-ttl-seconds/);
  assert.match(script, /systemctl enable --now holdfast-agent.service/);
  assert.match(script, /"store": "etcds:\/\/10.0.0.5:2379,10.0.1.5:2379"/);
  // etcd's client certificate is fetched at boot, like the token, into the files the config names.
  assert.match(script, /"etcdKey": "\/var\/lib\/holdfast\/etcd\/client.key"/);
  assert.match(script, /ETCD_SECRET=\$\(imds tags\/instance\/holdfast:etcd-secret/);
  assert.not.match(script, /BEGIN [A-Z ]*PRIVATE KEY/);
  assert.match(script, /"zone": "@AVAILABILITY_ZONE@"/);
  // The load balancer's name, from its instance tag, into the names the node certificate is asked for.
  assert.equal(group.agentConfig().certificateNames, ["@API_NAME@"]);
  assert.match(script, /-e "s\/@API_NAME@\/\$API_NAME\/g"/);
  // The token lives in Secrets Manager; neither it nor the data source's value is in the script.
  assert.not.match(script, /random_password|secret_string|aws_secretsmanager/);
  const version = resources(json, "aws_secretsmanager_secret_version")[0];
  assert.match(String(version?.secret_string), /data\.aws_secretsmanager_random_password/);
});

test("no node is handed the CA key: not in user data, tags, the agent config or the node role's grants", () => {
  const { stack, group } = build();
  const json = synth(stack);
  const text = JSON.stringify(json);
  const script = group.bootScript();
  // The node enrolls with its instance identity document; nothing fetches, writes or issues with a CA.
  assert.not.match(script, /ca\.key|ca-secret|CA_SECRET|cluster issue|PRIVATE KEY/);
  assert.match(script, /latest\/dynamic\/instance-identity\/document/);
  assert.is(group.agentConfig().identityDocument, "/var/lib/holdfast/identity-document.json");
  assert.not.match(text, /cluster-ca|holdfast:ca-secret|PRIVATE KEY/);
  // The role reads the token's and etcd's client certificate's secrets and nothing else of Secrets Manager.
  const read = policyOf(json).Statement.find((s) => s.Action.includes("secretsmanager:GetSecretValue"));
  assert.equal(read?.Resource.length, 2);
  assert.match(read?.Resource[0] ?? "", /aws_secretsmanager_secret\.cluster_aws_token/);
  assert.match(read?.Resource[1] ?? "", /aws_secretsmanager_secret\.cluster_aws_etcd-client/);
  const [template] = resources(json, "aws_launch_template");
  const tags = JSON.stringify(template?.tag_specifications);
  assert.not.match(tags, /ca-secret/);
});

test("the artifact is uploaded once, with its checksum, to a private KMS-encrypted bucket", () => {
  const { stack, cluster } = build();
  const text = Testing.synth(stack, true);
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_s3_bucket_public_access_block", {
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    }),
  );
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_s3_bucket_server_side_encryption_configuration", {
      rule: [
        { apply_server_side_encryption_by_default: { sse_algorithm: "aws:kms" }, bucket_key_enabled: true },
      ],
    }),
  );
  const sse = JSON.stringify(
    resources(JSON.parse(text), "aws_s3_bucket_server_side_encryption_configuration"),
  );
  assert.match(sse, /"kms_master_key_id":"\$\{aws_kms_key\.cluster_aws_key_\w+\.arn\}"/);
  const objects = resources(JSON.parse(text), "aws_s3_object");
  assert.is(objects.length, 1);
  assert.is(objects[0]?.source_hash, cluster.artifact.sha256);
  assert.is(objects[0]?.server_side_encryption, "aws:kms");
  assert.match(
    String(objects[0]?.key),
    new RegExp(`^holdfast/0\\.1\\.0/${cluster.artifact.sha256.slice(0, 16)}/`),
  );
});

test("the nodes' policy is an explicit list of actions on this cluster's resources only", () => {
  const json = synth(build().stack);
  const policy = policyOf(json);
  const actions = policy.Statement.flatMap((s) => s.Action);
  assert.equal(actions, ["s3:GetObject", "secretsmanager:GetSecretValue", "kms:Decrypt"]);
  for (const s of policy.Statement) {
    for (const r of s.Resource) assert.not.ok(r === "*" || r.endsWith(":*"), `wildcard resource ${r}`);
  }
  assert.match(
    policy.Statement[0]?.Resource[0] ?? "",
    /^arn:\$\{data\.aws_partition.*\}:s3:::\$\{aws_s3_bucket/,
  );
  const role = resources(json, "aws_iam_role")[0];
  assert.match(String(role?.assume_role_policy), /ec2\.amazonaws\.com/);
});

test("with SSM, the policy grants ssm:GetParameter on the token's and the etcd client's parameters only", () => {
  const stack = testStack();
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "prod",
    metadata: { etcdEndpoints: ["10.0.0.5:2379"] },
    artifactPath,
  });
  new AwsNodeGroup(stack, "storage", {
    cluster,
    vpcId: "vpc-1",
    subnets: SUBNETS,
    shared: { secrets: { store: "ssm", etcdClient: "/holdfast/prod/etcd-client" } },
  });
  const json = synth(stack);
  const policy = policyOf(json);
  assert.equal(policy.Statement[1]?.Action, ["ssm:GetParameter"]);
  assert.equal(
    policy.Statement[1]?.Resource.length,
    2,
    "the token and etcd's client certificate, no CA: nodes enroll",
  );
  assert.match(policy.Statement[1]?.Resource[1] ?? "", /:parameter\/holdfast\/prod\/etcd-client$/);
  assert.ok(
    Testing.toHaveResourceWithProperties(JSON.stringify(json), "aws_ssm_parameter", { type: "SecureString" }),
  );
});

test("security groups admit cluster traffic from the cluster, the API from client CIDRs, nothing from 0.0.0.0/0", () => {
  const json = synth(build({}, ["10.20.0.0/16"]).stack);
  const ingress = resources(json, "aws_vpc_security_group_ingress_rule");
  assert.ok(ingress.length >= 4);
  for (const rule of ingress) {
    assert.not.ok(rule.cidr_ipv4 === "0.0.0.0/0" || rule.cidr_ipv6 === "::/0", JSON.stringify(rule));
    assert.is(rule.ip_protocol, "tcp");
    assert.ok([9001, 9002].includes(rule.from_port as number), `port ${rule.from_port}`);
  }
  const fromClients = ingress.filter((r) => r.cidr_ipv4 === "10.20.0.0/16");
  assert.equal(
    fromClients.map((r) => r.from_port),
    [9001],
  );
  const replication = ingress.filter((r) => r.from_port === 9002);
  assert.is(replication.length, 1);
  assert.match(String(replication[0]?.referenced_security_group_id), /aws_security_group\.cluster_aws_nodes/);
});

test("an internal network load balancer fronts the API, and its DNS name is the cluster's endpoint", () => {
  const { stack } = build();
  const text = Testing.synth(stack, true);
  assert.ok(
    Testing.toHaveResourceWithProperties(text, "aws_lb", { internal: true, load_balancer_type: "network" }),
  );
  assert.ok(Testing.toHaveResourceWithProperties(text, "aws_lb_listener", { port: 9001, protocol: "TCP" }));
  const json = JSON.parse(text);
  assert.is(json.output.prod_api_endpoints.value.length, 1);
  assert.match(
    json.output.prod_api_endpoints.value[0],
    /^https:\/\/\$\{aws_lb\.storage_api-lb_\w+\.dns_name\}:9001$/,
  );
  // TLS ends at the nodes (the listener is TCP): their certificates name the load balancer, from an instance tag.
  const [template] = resources(json, "aws_launch_template") as Json[];
  const specs = template?.tag_specifications as { resource_type: string; tags: Json }[];
  const instanceTags = specs.find((s) => s.resource_type === "instance")?.tags ?? {};
  assert.match(String(instanceTags[BOOT_TAGS.apiName]), /^\$\{aws_lb\.storage_api-lb_\w+\.dns_name\}$/);
  assert.match(json.output.prod_cluster_id.value, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
});

test("without the load balancer no API name is tagged, and the cluster lists no endpoint", () => {
  const { stack } = build({ apiLoadBalancer: false });
  const json = synth(stack);
  const [template] = resources(json, "aws_launch_template") as Json[];
  const specs = template?.tag_specifications as { resource_type: string; tags: Json }[];
  assert.is(specs.find((s) => s.resource_type === "instance")?.tags[BOOT_TAGS.apiName], undefined);
  assert.equal(json.output.prod_api_endpoints?.value, []);
});

for (const [name, props, message] of [
  ["no subnets", { subnets: [] }, /^subnets: at least one subnet is required \(in test\/storage\)$/],
  [
    "a drive below the minimum",
    { dataDrives: [{ sizeGiB: 4 }] },
    /^dataDrives\[0\]\.sizeGiB: 4 GiB is below the minimum of 10 GiB/,
  ],
  [
    "two subnets in one zone",
    { subnets: [SUBNETS[0], { subnetId: "subnet-x", availabilityZone: "us-east-1a" }] },
    /^subnets: two subnets in us-east-1a: give one subnet per availability zone/,
  ],
  [
    "IOPS on a gp2 drive",
    { dataDrives: [{ sizeGiB: 100, volumeType: "gp2", iops: 3000 }] },
    /^dataDrives\[0\]\.iops: gp2 drives take no provisioned IOPS/,
  ],
] as const) {
  test(`${name} fails synthesis with a clear message`, () => {
    assert.throws(() => build(props as Partial<AwsNodeGroupProps>), message as RegExp);
  });
}

test("a bad agent setting fails synthesis naming the agent key", () => {
  const stack = testStack();
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "prod",
    metadata: { etcdEndpoints: ["10.0.0.5:2379"] },
    artifactPath,
    agent: { leaseTtl: 1 },
  });
  assert.throws(
    () => new AwsNodeGroup(stack, "storage", { cluster, vpcId: "vpc-1", subnets: SUBNETS }),
    /^agent\.leaseTtl: must be at least 2 seconds/,
  );
});

test("AWS node groups share one set of AWS resources: a second group agrees with the first or is refused", () => {
  const { stack, cluster } = build({ shared: { kmsKeyArn: "arn:aws:kms:us-east-1:1:key/a" } });
  new AwsNodeGroup(stack, "more", { cluster, vpcId: "vpc-1", subnets: SUBNETS });
  new AwsNodeGroup(stack, "same", {
    cluster,
    vpcId: "vpc-1",
    subnets: SUBNETS,
    shared: { kmsKeyArn: "arn:aws:kms:us-east-1:1:key/a" },
  });
  assert.throws(
    () =>
      new AwsNodeGroup(stack, "other-key", {
        cluster,
        vpcId: "vpc-1",
        subnets: SUBNETS,
        shared: { kmsKeyArn: "arn:aws:kms:us-east-1:1:key/b" },
      }),
    /^shared: differs from the cluster's AWS resources/,
  );
  assert.throws(
    () => new AwsNodeGroup(stack, "other-vpc", { cluster, vpcId: "vpc-2", subnets: SUBNETS }),
    /^vpcId: every AwsNodeGroup of a cluster must be in one VPC \(vpc-1\)/,
  );
  assert.equal(resources(synth(stack), "aws_kms_key"), [], "the given key, none made");
});

test("requireImdsv2: false is a warning, and the template then allows IMDSv1", () => {
  const { stack } = build({ requireImdsv2: false });
  assert.equal(warnings(stack), [
    "requireImdsv2: false lets any process that can make a plain HTTP request read the node's role credentials",
  ]);
  assert.ok(
    Testing.toHaveResourceWithProperties(Testing.synth(stack), "aws_launch_template", {
      metadata_options: { http_tokens: "optional" },
    }),
  );
});

test.run();
