/**
 * A six-node Holdfast cluster over three availability zones (two nodes each) on an etcd you run, with replicas
 * spread over zones. Synthesize it with `npx tsx main.ts` (into ./cdktf.out) or `npx cdktf synth` here.
 */
import { join, resolve } from "node:path";
import { App, AwsProvider, TerraformStack } from "../../constructs/cdktf.js";
import { AwsNodeGroup, HoldfastCluster } from "../../constructs/index.js";

export function awsThreeAz(app: App): TerraformStack {
  const stack = new TerraformStack(app, "aws-three-az");
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "prod",
    metadata: { etcdEndpoints: ["10.0.10.10:2379", "10.0.11.10:2379", "10.0.12.10:2379"] },
    clientCidrs: ["10.0.0.0/16"],
    replication: { replicas: 3, spread: "zones" },
    tags: { team: "storage", env: "prod" },
  });
  new AwsNodeGroup(stack, "storage", {
    cluster,
    vpcId: "vpc-0123456789abcdef0",
    subnets: [
      { subnetId: "subnet-0aaa0000000000001", availabilityZone: "us-east-1a" },
      { subnetId: "subnet-0bbb0000000000002", availabilityZone: "us-east-1b" },
      { subnetId: "subnet-0ccc0000000000003", availabilityZone: "us-east-1c" },
    ],
    nodesPerZone: 2,
    instanceType: "i4i.xlarge",
    dataDrives: [{ sizeGiB: 500, volumeType: "gp3", iops: 6000, throughput: 250 }],
  });
  return stack;
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  const app = new App({
    outdir: process.env.CDKTF_OUTDIR ? undefined : join(import.meta.dirname, "cdktf.out"),
  });
  awsThreeAz(app);
  app.synth();
}
