import type { AgentConfigInput } from "../agent/src/config/index.js";
import { checkedAgentConfig, DEFAULT_DATA_DIR, invalid } from "./agent-settings.js";
import { AwsClusterResources, type AwsSharedProps } from "./aws-cluster-resources.js";
import {
  Annotations,
  AutoscalingGroup,
  Construct,
  IamInstanceProfile,
  IamRole,
  IamRolePolicy,
  LaunchTemplate,
  Lazy,
  Lb,
  LbListener,
  LbTargetGroup,
} from "./cdktf.js";
import type { HoldfastCluster } from "./cluster.js";
import { BOOT_TAGS, BOOT_VALUES, renderBootScript } from "./user-data.js";

/** A subnet the group places nodes in; its availability zone becomes the nodes' Holdfast zone. */
export interface AwsSubnet {
  readonly subnetId: string;
  /** e.g. `us-east-1a`. One auto scaling group per zone, so two subnets of one zone are refused. */
  readonly availabilityZone: string;
}

/** An EBS drive on every node, formatted once and mounted as one Holdfast storage pool. */
export interface EbsDataDrive {
  /** The device name in the launch template. @default - /dev/sdf, /dev/sdg, ... in order */
  readonly deviceName?: string;
  /** Size in GiB, at least MIN_DRIVE_GIB. */
  readonly sizeGiB: number;
  /** @default "gp3" */
  readonly volumeType?: "gp3" | "gp2" | "io1" | "io2" | "st1" | "sc1";
  /** Provisioned IOPS (gp3, io1, io2 only). @default - the volume type's baseline */
  readonly iops?: number;
  /** Throughput in MiB/s (gp3 only). @default - gp3's baseline, 125 */
  readonly throughput?: number;
}

/** Endpoints for S3-compatible stores, FIPS or private endpoints. */
export interface AwsEndpoints {
  /** @default - https://BUCKET.s3.REGION.amazonaws.com */
  readonly s3?: string;
  /** @default - https://secretsmanager.REGION.amazonaws.com */
  readonly secretsManager?: string;
  /** @default - https://ssm.REGION.amazonaws.com */
  readonly ssm?: string;
}

export interface AwsNodeGroupProps {
  /** The cluster the nodes join. */
  readonly cluster: HoldfastCluster;
  readonly vpcId: string;
  /**
   * What every AWS node group of the cluster shares (secrets, KMS key): give it on the first one, or the same on
   * each.
   * @default - new ones, made by the first AWS node group
   */
  readonly shared?: AwsSharedProps;
  /** Subnets to spread nodes over, one per availability zone. */
  readonly subnets: readonly AwsSubnet[];
  /** Nodes in each zone. @default 1 */
  readonly nodesPerZone?: number;
  /** @default "m6i.large" */
  readonly instanceType?: string;
  /** An AMI id, or `resolve:ssm:PARAMETER`. @default - the latest Amazon Linux 2023 (x86_64) */
  readonly imageId?: string;
  /** Data drives on every node. @default - one 100 GiB gp3 drive */
  readonly dataDrives?: readonly EbsDataDrive[];
  /** Refuse IMDSv1 (session-less) metadata requests. @default true */
  readonly requireImdsv2?: boolean;
  /** An internal network load balancer in front of the nodes' API. @default true */
  readonly apiLoadBalancer?: boolean;
  /** @default - the region's public endpoints */
  readonly endpoints?: AwsEndpoints;
  /** A permissions boundary for the nodes' role. @default - none */
  readonly permissionsBoundaryArn?: string;
  /** Tags on this group's resources, besides the cluster's. @default - none */
  readonly tags?: Readonly<Record<string, string>>;
}

/** The smallest data drive: below it the agent's pool has no room for replicas worth placing. */
export const MIN_DRIVE_GIB = 10;
const DEVICE_NAMES = ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk"];
const MAX_USER_DATA = 16 * 1024;
const SAMPLE_INSTANCE = {
  instanceId: "i-0123456789abcdef0",
  localIpv4: "10.0.0.1",
  zone: "us-east-1a",
  rack: "use1-az1",
  apiName: "storage-api.elb.example",
};
const AL2023 = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

/**
 * Holdfast nodes on EC2: one auto scaling group per availability zone from one launch template (IMDSv2 required,
 * encrypted EBS data drives, a least-privilege instance profile), in the cluster's node security group, with user
 * data that installs the bundled agent and starts it with the zone and rack of its availability zone.
 */
export class AwsNodeGroup extends Construct {
  readonly role: IamRole;
  readonly launchTemplate: LaunchTemplate;
  readonly autoScalingGroups: AutoscalingGroup[] = [];
  readonly loadBalancer?: Lb;
  readonly aws: AwsClusterResources;
  readonly devices: string[];

  constructor(
    scope: Construct,
    id: string,
    readonly props: AwsNodeGroupProps,
  ) {
    super(scope, id);
    const { cluster } = props;
    const drives = props.dataDrives ?? [{ sizeGiB: 100 }];
    this.validate(drives);
    const aws = AwsClusterResources.of(cluster, props.vpcId, props.shared, this);
    this.aws = aws;
    const tags = { ...cluster.tags, ...props.tags, "holdfast:node-group": id };
    const nodesPerZone = props.nodesPerZone ?? 1;

    this.devices = drives.map((d, i) => d.deviceName ?? (DEVICE_NAMES[i] as string));
    // With sample instance values, the config must pass the agent's own schema before any node boots with it
    // (the store is checked by the cluster, and may not be known until every group is declared).
    checkedAgentConfig(this, {
      ...this.agentConfig(SAMPLE_INSTANCE),
      store: "etcd://sample:2379",
      etcdPlainHttp: true,
      etcdCa: undefined,
      etcdCert: undefined,
      etcdKey: undefined,
    });

    this.role = this.createRole(id, tags);
    const profile = new IamInstanceProfile(this, "profile", {
      namePrefix: "holdfast-",
      role: this.role.name,
      tags,
    });
    if (props.requireImdsv2 === false) {
      Annotations.of(this).addWarning(
        "requireImdsv2: false lets any process that can make a plain HTTP request read the node's role credentials",
      );
    }
    this.launchTemplate = new LaunchTemplate(this, "launch-template", {
      namePrefix: `holdfast-${cluster.clusterName}-${id}-`,
      imageId: props.imageId ?? AL2023,
      instanceType: props.instanceType ?? "m6i.large",
      ebsOptimized: "true",
      iamInstanceProfile: { arn: profile.arn },
      vpcSecurityGroupIds: [aws.nodeSecurityGroup.id],
      metadataOptions: {
        httpEndpoint: "enabled",
        httpTokens: props.requireImdsv2 === false ? "optional" : "required",
        httpPutResponseHopLimit: 1,
        instanceMetadataTags: "enabled",
      },
      blockDeviceMappings: drives.map((d, i) => ({
        deviceName: this.devices[i],
        ebs: {
          volumeSize: d.sizeGiB,
          volumeType: d.volumeType ?? "gp3",
          iops: d.iops,
          throughput: d.throughput,
          encrypted: "true",
          kmsKeyId: aws.kmsKeyArn,
          deleteOnTermination: "true",
        },
      })),
      userData: Lazy.stringValue({ produce: () => Buffer.from(this.bootScript()).toString("base64") }),
      tagSpecifications: ["instance", "volume"].map((resourceType) => ({
        resourceType,
        tags: {
          ...tags,
          [BOOT_TAGS.bucket]: aws.artifactBucket.id,
          [BOOT_TAGS.key]: aws.artifactObject.key,
          [BOOT_TAGS.tokenSecret]: aws.tokenSecret,
          ...(aws.etcdSecret ? { [BOOT_TAGS.etcdSecret]: aws.etcdSecret } : {}),
          ...(props.apiLoadBalancer !== false
            ? { [BOOT_TAGS.apiName]: Lazy.stringValue({ produce: () => this.loadBalancer?.dnsName }) }
            : {}),
        },
      })),
      updateDefaultVersion: true,
      tags,
    });

    const subnetIds = props.subnets.map((s) => s.subnetId);
    let targetGroup: LbTargetGroup | undefined;
    if (props.apiLoadBalancer !== false) {
      this.loadBalancer = new Lb(this, "api-lb", {
        internal: true,
        loadBalancerType: "network",
        subnets: subnetIds,
        securityGroups: [aws.apiSecurityGroup.id],
        enableCrossZoneLoadBalancing: true,
        tags,
      });
      targetGroup = new LbTargetGroup(this, "api-targets", {
        port: cluster.ports.api,
        protocol: "TCP",
        vpcId: props.vpcId,
        healthCheck: { protocol: "TCP", port: String(cluster.ports.api) },
        tags,
      });
      new LbListener(this, "api-listener", {
        loadBalancerArn: this.loadBalancer.arn,
        port: cluster.ports.api,
        protocol: "TCP",
        defaultAction: [{ type: "forward", targetGroupArn: targetGroup.arn }],
        tags,
      });
    }

    for (const subnet of props.subnets) {
      this.autoScalingGroups.push(
        new AutoscalingGroup(this, `asg-${subnet.availabilityZone}`, {
          name: `holdfast-${cluster.clusterName}-${id}-${subnet.availabilityZone}`,
          minSize: nodesPerZone,
          maxSize: nodesPerZone,
          desiredCapacity: nodesPerZone,
          vpcZoneIdentifier: [subnet.subnetId],
          launchTemplate: { id: this.launchTemplate.id, version: "$Latest" },
          targetGroupArns: targetGroup ? [targetGroup.arn] : undefined,
          // EC2 health only: an API hiccup must not make the group replace a node that holds replicas.
          healthCheckType: "EC2",
          tag: Object.entries({
            ...tags,
            "holdfast:zone": subnet.availabilityZone,
            Name: `holdfast-${id}`,
          }).map(([key, value]) => ({ key, value, propagateAtLaunch: true })),
        }),
      );
    }

    const zones = props.subnets.map((s) => s.availabilityZone);
    cluster.register({
      kind: "aws",
      zones,
      racks: zones,
      nodeCount: nodesPerZone * zones.length,
      // The load balancer passes TCP through: TLS ends at the nodes, whose certificates name it (BOOT_TAGS.apiName).
      apiEndpoints: this.loadBalancer ? [`https://${this.loadBalancer.dnsName}:${cluster.ports.api}`] : [],
      hosts: [],
    });
  }

  /**
   * The agent config a node writes: the instance's own values go where `values` says (BOOT_VALUES in user data).
   * Call it after every node group of the cluster is declared: the store may depend on them.
   */
  agentConfig(values: Record<keyof typeof BOOT_VALUES, string> = BOOT_VALUES): AgentConfigInput {
    const { cluster } = this.props;
    const dataDir = cluster.agent.dataDir ?? DEFAULT_DATA_DIR;
    return {
      ...cluster.agent,
      dataDir,
      ...cluster.storeSettings(dataDir),
      cluster: cluster.clusterName,
      nodeId: values.instanceId,
      api: `${values.localIpv4}:${cluster.ports.api}`,
      replication: `${values.localIpv4}:${cluster.ports.replication}`,
      pools: this.devices.map((_, i) => `${dataDir}/pools/${i}`),
      zone: values.zone,
      rack: values.rack,
      // The user data writes it from IMDS; the agent enrolls with it (the signer trusts AWS's key).
      identityDocument: `${dataDir}/identity-document.json`,
      // Clients reach the API through the load balancer, which passes TCP through: the certificate names it.
      ...(this.props.apiLoadBalancer !== false ? { certificateNames: [values.apiName] } : {}),
    };
  }

  /** The user data script, rendered at synthesis once every node group of the cluster is known. */
  bootScript(): string {
    const script = renderBootScript({
      config: this.agentConfig(),
      artifact: this.props.cluster.artifact,
      secretStore: this.aws.secretStore,
      devices: this.devices,
      endpoints: this.props.endpoints ?? {},
    });
    // EC2 refuses user data over 16 KiB (before base64) at launch, long after a plan looked fine.
    if (Buffer.byteLength(script) > MAX_USER_DATA) {
      throw invalid(
        this,
        "userData",
        `${Buffer.byteLength(script)} bytes, above EC2's limit of ${MAX_USER_DATA}`,
      );
    }
    return script;
  }

  private validate(drives: readonly EbsDataDrive[]): void {
    const { subnets } = this.props;
    if (subnets.length === 0) throw invalid(this, "subnets", "at least one subnet is required");
    const zones = subnets.map((s) => s.availabilityZone);
    const twice = zones.find((z, i) => zones.indexOf(z) !== i);
    if (twice)
      throw invalid(this, "subnets", `two subnets in ${twice}: give one subnet per availability zone`);
    const perZone = this.props.nodesPerZone ?? 1;
    if (!Number.isInteger(perZone) || perZone < 1)
      throw invalid(this, "nodesPerZone", "must be a whole number >= 1");
    if (drives.length === 0) throw invalid(this, "dataDrives", "at least one data drive is required");
    if (drives.length > DEVICE_NAMES.length)
      throw invalid(this, "dataDrives", `at most ${DEVICE_NAMES.length} drives`);
    drives.forEach((d, i) => {
      const type = d.volumeType ?? "gp3";
      if (!Number.isInteger(d.sizeGiB) || d.sizeGiB < MIN_DRIVE_GIB) {
        throw invalid(
          this,
          `dataDrives[${i}].sizeGiB`,
          `${d.sizeGiB} GiB is below the minimum of ${MIN_DRIVE_GIB} GiB`,
        );
      }
      if (d.iops !== undefined && !["gp3", "io1", "io2"].includes(type)) {
        throw invalid(this, `dataDrives[${i}].iops`, `${type} drives take no provisioned IOPS`);
      }
      if (d.throughput !== undefined && type !== "gp3") {
        throw invalid(this, `dataDrives[${i}].throughput`, "only gp3 drives take a throughput");
      }
    });
  }

  /** The nodes' role: read this cluster's artifact object and its two secrets, decrypt with its key. Nothing else. */
  private createRole(id: string, tags: Record<string, string>): IamRole {
    const aws = this.aws;
    const partition = aws.partition.partition;
    const role = new IamRole(this, "role", {
      namePrefix: "holdfast-node-",
      description: `Holdfast ${this.props.cluster.clusterName} ${id} nodes`,
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
        ],
      }),
      permissionsBoundary: this.props.permissionsBoundaryArn,
      tags,
    });
    const secretActions =
      aws.secretStore === "ssm" ? ["ssm:GetParameter"] : ["secretsmanager:GetSecretValue"];
    new IamRolePolicy(this, "policy", {
      role: role.id,
      name: "holdfast-agent",
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "ReadAgentArtifact",
            Effect: "Allow",
            Action: ["s3:GetObject"],
            Resource: [`arn:${partition}:s3:::${aws.artifactBucket.id}/${aws.artifactObject.key}`],
          },
          { Sid: "ReadClusterSecrets", Effect: "Allow", Action: secretActions, Resource: aws.secretArns },
          {
            Sid: "DecryptThroughThoseServices",
            Effect: "Allow",
            Action: ["kms:Decrypt"],
            Resource: [aws.kmsKeyArn],
            Condition: {
              StringLike: {
                "kms:ViaService": [
                  "s3.*.amazonaws.com",
                  "secretsmanager.*.amazonaws.com",
                  "ssm.*.amazonaws.com",
                ],
              },
            },
          },
        ],
      }),
    });
    return role;
  }
}
