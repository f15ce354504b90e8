/**
 * One cluster over AWS and on-prem: three on-prem hosts (configured by the holdfast Chef cookbook) run the
 * embedded etcd and hold one zone; AWS nodes in two availability zones hold the other two, so three replicas land
 * in three zones. `npx tsx main.ts` synthesizes into ./cdktf.out and writes each host's Chef JSON to
 * ./cdktf.out/chef/<host>.json.
 */
import { join, resolve } from "node:path";
import { App, AwsProvider, TerraformStack } from "../../constructs/cdktf.js";
import { AwsNodeGroup, HoldfastCluster, OnPremNodeGroup } from "../../constructs/index.js";

export function hybrid(app: App): { stack: TerraformStack; onPrem: OnPremNodeGroup } {
  const stack = new TerraformStack(app, "hybrid");
  new AwsProvider(stack, "aws", { region: "eu-west-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "hybrid",
    metadata: { embeddedEtcd: { members: 3 } },
    clientCidrs: ["10.40.0.0/16", "192.168.50.0/24"],
    replication: { replicas: 3, spread: "zones" },
    agent: { leaseTtl: 10 },
    tags: { team: "storage" },
  });
  const onPrem = new OnPremNodeGroup(stack, "dc1", {
    cluster,
    artifactUrl: "https://artifacts.dc1.example.com/holdfast/holdfast-agent-0.1.0.tar.gz",
    hosts: [
      {
        name: "dc1-stor1",
        address: "192.168.50.11",
        zone: "dc1",
        rack: "r1",
        devices: ["/dev/sdb", "/dev/sdc"],
      },
      {
        name: "dc1-stor2",
        address: "192.168.50.12",
        zone: "dc1",
        rack: "r2",
        devices: ["/dev/sdb", "/dev/sdc"],
      },
      { name: "dc1-stor3", address: "192.168.50.13", zone: "dc1", rack: "r3", pools: ["/srv/holdfast/pool"] },
    ],
  });
  new AwsNodeGroup(stack, "cloud", {
    cluster,
    vpcId: "vpc-0fedcba9876543210",
    subnets: [
      { subnetId: "subnet-0ddd0000000000004", availabilityZone: "eu-west-1a" },
      { subnetId: "subnet-0eee0000000000005", availabilityZone: "eu-west-1b" },
    ],
    dataDrives: [{ sizeGiB: 200 }, { sizeGiB: 200 }],
  });
  return { stack, onPrem };
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  const outdir = process.env.CDKTF_OUTDIR ?? join(import.meta.dirname, "cdktf.out");
  const app = new App({ outdir });
  const { onPrem } = hybrid(app);
  app.synth();
  onPrem.writeChefAttributes(join(outdir, "chef"));
}
