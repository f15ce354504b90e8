import { invalid } from "./agent-settings.js";
import {
  AssetType,
  Construct,
  DataAwsCallerIdentity,
  DataAwsPartition,
  DataAwsSecretsmanagerRandomPassword,
  KmsAlias,
  KmsKey,
  S3Bucket,
  S3BucketPublicAccessBlock,
  S3BucketServerSideEncryptionConfigurationA,
  S3Object,
  SecretsmanagerSecret,
  SecretsmanagerSecretVersion,
  SecurityGroup,
  SsmParameter,
  TerraformAsset,
  VpcSecurityGroupEgressRule,
  VpcSecurityGroupIngressRule,
} from "./cdktf.js";
import type { HoldfastCluster } from "./cluster.js";

/**
 * How the API token reaches AWS nodes: fetched at boot, never written into user data. The cluster CA's key never
 * reaches them: a node enrolls with its instance identity document, answered by `holdfast cluster sign` where the
 * operator keeps the CA (docs/decisions/0010-trust-boundary.md).
 */
export interface AwsSecretsProps {
  /** The AWS service that keeps them. @default "secretsmanager" */
  readonly store?: "secretsmanager" | "ssm";
  /** An existing secret ARN (Secrets Manager) or SecureString parameter name (SSM) holding the API token. @default - a new secret with a random 48-character token */
  readonly token?: string;
  /**
   * An existing secret ARN or SecureString parameter name holding the cluster's etcd client certificate as JSON
   * `{"ca": PEM, "crt": PEM, "key": PEM}` (`holdfast etcd client` writes the three files). SSM cannot create an empty
   * parameter, so with `store: "ssm"` this is required.
   * @default - a new, empty Secrets Manager secret that you fill once before nodes can boot (see constructs/README.md)
   */
  readonly etcdClient?: string;
}

/** What the AWS node groups of one cluster share, given on any of them (the same on each that gives it). */
export interface AwsSharedProps {
  /** API token and etcd client certificate handling. @default - in Secrets Manager, created by the construct */
  readonly secrets?: AwsSecretsProps;
  /** An existing KMS key (ARN) for EBS drives, secrets and the artifact bucket. @default - a new key with rotation on */
  readonly kmsKeyArn?: string;
}

export interface AwsClusterResourcesProps extends AwsSharedProps {
  readonly cluster: HoldfastCluster;
  readonly vpcId: string;
}

/**
 * What every AWS node group of one cluster shares: the KMS key, the API token secret (no CA: nodes enroll), the private bucket
 * holding the agent artifact, and the security groups of the nodes and of their API load balancers. Made once, by
 * the first AwsNodeGroup (AwsClusterResources.of), so an on-prem-only cluster creates no AWS resources, and the
 * cloud-neutral HoldfastCluster knows nothing of them.
 */
export class AwsClusterResources extends Construct {
  /**
   * The cluster's AWS resources, made by the first AWS node group that asks. A later group must be in the same VPC,
   * and give the same `shared` props or none: the resources exist already.
   */
  static of(cluster: HoldfastCluster, vpcId: string, shared: AwsSharedProps | undefined, asker: Construct) {
    const existing = cluster.node.tryFindChild("aws");
    if (existing instanceof AwsClusterResources) {
      if (existing.vpcId !== vpcId) {
        throw invalid(
          asker,
          "vpcId",
          `every AwsNodeGroup of a cluster must be in one VPC (${existing.vpcId})`,
        );
      }
      if (shared && JSON.stringify(shared) !== JSON.stringify(existing.shared)) {
        throw invalid(
          asker,
          "shared",
          `differs from the cluster's AWS resources, made by an earlier AwsNodeGroup: give it on the first one, or the same on each`,
        );
      }
      return existing;
    }
    return new AwsClusterResources(cluster, "aws", { cluster, vpcId, ...shared });
  }

  readonly vpcId: string;
  readonly kmsKeyArn: string;
  readonly secretStore: "secretsmanager" | "ssm";
  /** ARN (Secrets Manager) or parameter name (SSM). */
  readonly tokenSecret: string;
  /** The secret with the cluster's etcd client certificate; none when agents speak plain HTTP to etcd (a lab). */
  readonly etcdSecret?: string;
  /** ARNs for the nodes' IAM policy. */
  readonly secretArns: string[];
  readonly artifactBucket: S3Bucket;
  readonly artifactObject: S3Object;
  /** The nodes' security group: cluster traffic from each other, on-prem hosts and the API load balancers. */
  readonly nodeSecurityGroup: SecurityGroup;
  /** The API load balancers' security group: the API port from client CIDRs and from the nodes. */
  readonly apiSecurityGroup: SecurityGroup;
  readonly account: DataAwsCallerIdentity;
  readonly partition: DataAwsPartition;
  private readonly admitted = new Set<string>();

  constructor(
    scope: Construct,
    id: string,
    private readonly props: AwsClusterResourcesProps,
  ) {
    super(scope, id);
    const { cluster } = props;
    const name = cluster.clusterName;
    if (props.secrets?.store === "ssm" && !props.secrets.etcdClient && cluster.etcdTls) {
      throw invalid(
        this,
        "secrets.etcdClient",
        'with store "ssm" give the name of an existing SecureString parameter holding the cluster\'s etcd client certificate',
      );
    }
    const tags = { ...cluster.tags };
    this.vpcId = props.vpcId;
    this.account = new DataAwsCallerIdentity(this, "account");
    this.partition = new DataAwsPartition(this, "partition");
    this.kmsKeyArn = props.kmsKeyArn ?? this.createKey(name, tags);

    this.secretStore = props.secrets?.store ?? "secretsmanager";
    const token = props.secrets?.token ?? this.createToken(name, tags);
    const etcd = !cluster.etcdTls
      ? undefined
      : (props.secrets?.etcdClient ??
        new SecretsmanagerSecret(this, "etcd-client", {
          name: `holdfast/${name}/etcd-client`,
          description: `Holdfast ${name}'s etcd client certificate: {"ca": PEM, "crt": PEM, "key": PEM}, put once by the operator (holdfast etcd client)`,
          kmsKeyId: this.kmsKeyArn,
          tags,
        }).arn);
    this.tokenSecret = token;
    this.etcdSecret = etcd;
    // The token and etcd's client certificate only: the CA key stays with the signer (`holdfast cluster sign`),
    // never granted to the node role.
    const secrets = [token, ...(etcd ? [etcd] : [])];
    this.secretArns = this.secretStore === "ssm" ? secrets.map((p) => this.parameterArn(p)) : secrets;

    this.artifactBucket = new S3Bucket(this, "artifacts", { bucketPrefix: "holdfast-artifacts-", tags });
    new S3BucketPublicAccessBlock(this, "artifacts-private", {
      bucket: this.artifactBucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketServerSideEncryptionConfigurationA(this, "artifacts-encryption", {
      bucket: this.artifactBucket.id,
      rule: [
        {
          applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: this.kmsKeyArn },
          bucketKeyEnabled: true,
        },
      ],
    });
    const asset = new TerraformAsset(this, "agent-artifact", {
      path: cluster.artifact.path,
      type: AssetType.FILE,
    });
    // The checksum in the key: a new artifact is a new object, so nodes booting during an update never mix
    // the user data of one version with the tarball of another.
    this.artifactObject = new S3Object(this, "agent-artifact-object", {
      bucket: this.artifactBucket.id,
      key: `holdfast/${cluster.artifact.version}/${cluster.artifact.sha256.slice(0, 16)}/${cluster.artifact.fileName}`,
      source: asset.path,
      sourceHash: cluster.artifact.sha256,
      serverSideEncryption: "aws:kms",
      kmsKeyId: this.kmsKeyArn,
      tags,
    });

    this.nodeSecurityGroup = new SecurityGroup(this, "nodes", {
      namePrefix: `holdfast-${name}-nodes-`,
      description: `Holdfast ${name} nodes: cluster traffic only`,
      vpcId: props.vpcId,
      tags: { ...tags, Name: `holdfast-${name}-nodes` },
    });
    this.apiSecurityGroup = new SecurityGroup(this, "api", {
      namePrefix: `holdfast-${name}-api-`,
      description: `Holdfast ${name} API load balancers: clients and nodes`,
      vpcId: props.vpcId,
      tags: { ...tags, Name: `holdfast-${name}-api` },
    });
    this.rules();
    cluster.onNodeGroup((group) => {
      if (group.kind === "on-prem") this.admitHosts(group.hosts.map((h) => h.address));
    });
  }

  /** The shared props these resources were made with, which every later AWS node group must agree with. */
  get shared(): AwsSharedProps {
    const { secrets, kmsKeyArn } = this.props;
    return { ...(secrets && { secrets }), ...(kmsKeyArn && { kmsKeyArn }) };
  }

  /** Admits cluster traffic from on-prem hosts (their fixed addresses), once per address. */
  private admitHosts(addresses: readonly string[]): void {
    const { ports } = this.props.cluster;
    for (const address of addresses) {
      if (this.admitted.has(address)) continue;
      this.admitted.add(address);
      const cidr = address.includes(":") ? { cidrIpv6: `${address}/128` } : { cidrIpv4: `${address}/32` };
      for (const [what, port] of [
        ["api", ports.api],
        ["replication", ports.replication],
      ] as const) {
        new VpcSecurityGroupIngressRule(this, `onprem-${what}-${address}`, {
          securityGroupId: this.nodeSecurityGroup.id,
          description: `Holdfast ${what} from on-prem host ${address}`,
          ipProtocol: "tcp",
          fromPort: port,
          toPort: port,
          ...cidr,
        });
      }
    }
  }

  /** The ARN of an SSM parameter given by name (IAM needs ARNs; users give names). */
  private parameterArn(name: string): string {
    if (name.startsWith("arn:")) return name;
    const path = name.startsWith("/") ? name.slice(1) : name;
    return `arn:${this.partition.partition}:ssm:*:${this.account.accountId}:parameter/${path}`;
  }

  private createKey(name: string, tags: Record<string, string>): string {
    const root = `arn:${this.partition.partition}:iam::${this.account.accountId}:root`;
    // The Auto Scaling service-linked role launches the instances, so it must be able to use the key for their
    // encrypted EBS drives; the account root keeps IAM in charge of every other use.
    const autoscaling = `arn:${this.partition.partition}:iam::${this.account.accountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    const key = new KmsKey(this, "key", {
      description: `Holdfast ${name}: EBS data drives, secrets, agent artifact`,
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Sid: "AccountIam", Effect: "Allow", Principal: { AWS: root }, Action: "kms:*", Resource: "*" },
          {
            Sid: "AutoScalingEbs",
            Effect: "Allow",
            Principal: { AWS: autoscaling },
            Action: [
              "kms:Encrypt",
              "kms:Decrypt",
              "kms:ReEncrypt*",
              "kms:GenerateDataKey*",
              "kms:DescribeKey",
            ],
            Resource: "*",
          },
          {
            Sid: "AutoScalingGrants",
            Effect: "Allow",
            Principal: { AWS: autoscaling },
            Action: "kms:CreateGrant",
            Resource: "*",
            Condition: { Bool: { "kms:GrantIsForAWSResource": "true" } },
          },
        ],
      }),
      tags,
    });
    new KmsAlias(this, "key-alias", { name: `alias/holdfast-${name}`, targetKeyId: key.keyId });
    return key.arn;
  }

  /** A random 48-character token, generated by AWS and kept only in the secret (and Terraform state). */
  private createToken(name: string, tags: Record<string, string>): string {
    const random = new DataAwsSecretsmanagerRandomPassword(this, "token-value", {
      passwordLength: 48,
      excludePunctuation: true,
    });
    // The data source draws a new value on every plan: the first one is kept (ignoreChanges below).
    if (this.secretStore === "ssm") {
      return new SsmParameter(this, "token", {
        name: `/holdfast/${name}/api-token`,
        type: "SecureString",
        keyId: this.kmsKeyArn,
        value: random.randomPassword,
        lifecycle: { ignoreChanges: ["value"] },
        tags,
      }).name;
    }
    const secret = new SecretsmanagerSecret(this, "token", {
      name: `holdfast/${name}/api-token`,
      description: `Holdfast API token of ${name}`,
      kmsKeyId: this.kmsKeyArn,
      tags,
    });
    new SecretsmanagerSecretVersion(this, "token-version", {
      secretId: secret.id,
      secretString: random.randomPassword,
      lifecycle: { ignoreChanges: ["secret_string"] },
    });
    return secret.arn;
  }

  private rules(): void {
    const { ports, clientCidrs } = this.props.cluster;
    const nodes = this.nodeSecurityGroup.id;
    const api = this.apiSecurityGroup.id;
    for (const [what, port] of [
      ["api", ports.api],
      ["replication", ports.replication],
    ] as const) {
      new VpcSecurityGroupIngressRule(this, `nodes-${what}-from-nodes`, {
        securityGroupId: nodes,
        description: `Holdfast ${what} between nodes`,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        referencedSecurityGroupId: nodes,
      });
    }
    new VpcSecurityGroupIngressRule(this, "nodes-api-from-lb", {
      securityGroupId: nodes,
      description: "Holdfast API from the API load balancers (client requests and health checks)",
      ipProtocol: "tcp",
      fromPort: ports.api,
      toPort: ports.api,
      referencedSecurityGroupId: api,
    });
    // Nodes reach S3, Secrets Manager or SSM, package mirrors and etcd, whose addresses are not known here.
    new VpcSecurityGroupEgressRule(this, "nodes-egress", {
      securityGroupId: nodes,
      description: "Holdfast nodes: AWS APIs, packages, etcd, peers",
      ipProtocol: "-1",
      cidrIpv4: "0.0.0.0/0",
    });
    new VpcSecurityGroupIngressRule(this, "lb-api-from-nodes", {
      securityGroupId: api,
      description: "Holdfast API from the cluster's nodes",
      ipProtocol: "tcp",
      fromPort: ports.api,
      toPort: ports.api,
      referencedSecurityGroupId: nodes,
    });
    clientCidrs.forEach((cidr, i) => {
      new VpcSecurityGroupIngressRule(this, `lb-api-from-client-${i}`, {
        securityGroupId: api,
        description: `Holdfast API from clients ${cidr}`,
        ipProtocol: "tcp",
        fromPort: ports.api,
        toPort: ports.api,
        ...(cidr.includes(":") ? { cidrIpv6: cidr } : { cidrIpv4: cidr }),
      });
    });
    new VpcSecurityGroupEgressRule(this, "lb-api-to-nodes", {
      securityGroupId: api,
      description: "Holdfast API load balancers to the nodes",
      ipProtocol: "tcp",
      fromPort: ports.api,
      toPort: ports.api,
      referencedSecurityGroupId: nodes,
    });
  }
}
