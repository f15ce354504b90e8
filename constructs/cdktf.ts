/**
 * Every import from CDKTF, its constructs base and its prebuilt AWS provider goes through this file.
 *
 * HashiCorp archived CDKTF in December 2025; its community fork is CDK Terrain (`cdktn`), with the same API.
 * Moving to it is this file only: replace "cdktf" with "cdktn" and "@cdktf/provider-aws" with the fork's AWS
 * provider package in the `from` clauses below (see constructs/README.md).
 */

export { AutoscalingGroup } from "@cdktf/provider-aws/lib/autoscaling-group/index.js";
export { DataAwsCallerIdentity } from "@cdktf/provider-aws/lib/data-aws-caller-identity/index.js";
export { DataAwsPartition } from "@cdktf/provider-aws/lib/data-aws-partition/index.js";
export { DataAwsSecretsmanagerRandomPassword } from "@cdktf/provider-aws/lib/data-aws-secretsmanager-random-password/index.js";
export { IamInstanceProfile } from "@cdktf/provider-aws/lib/iam-instance-profile/index.js";
export { IamRole } from "@cdktf/provider-aws/lib/iam-role/index.js";
export { IamRolePolicy } from "@cdktf/provider-aws/lib/iam-role-policy/index.js";
export { KmsAlias } from "@cdktf/provider-aws/lib/kms-alias/index.js";
export { KmsKey } from "@cdktf/provider-aws/lib/kms-key/index.js";
export { LaunchTemplate } from "@cdktf/provider-aws/lib/launch-template/index.js";
export { Lb } from "@cdktf/provider-aws/lib/lb/index.js";
export { LbListener } from "@cdktf/provider-aws/lib/lb-listener/index.js";
export { LbTargetGroup } from "@cdktf/provider-aws/lib/lb-target-group/index.js";
export { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
export { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket/index.js";
export { S3BucketPublicAccessBlock } from "@cdktf/provider-aws/lib/s3-bucket-public-access-block/index.js";
export { S3BucketServerSideEncryptionConfigurationA } from "@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration/index.js";
export { S3Object } from "@cdktf/provider-aws/lib/s3-object/index.js";
export { SecretsmanagerSecret } from "@cdktf/provider-aws/lib/secretsmanager-secret/index.js";
export { SecretsmanagerSecretVersion } from "@cdktf/provider-aws/lib/secretsmanager-secret-version/index.js";
export { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
export { SsmParameter } from "@cdktf/provider-aws/lib/ssm-parameter/index.js";
export { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";
export { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
export {
  Annotations,
  App,
  AssetType,
  Fn,
  type ITerraformDependable,
  Lazy,
  TerraformAsset,
  TerraformOutput,
  TerraformStack,
  Testing,
  Token,
} from "cdktf";
export { Construct, type IConstruct } from "constructs";
// The holdfast provider's bindings are generated against "cdktf" too (providers/cdktf/generate.ts).
export {
  HoldfastProvider,
  HoldfastVolume as HoldfastVolumeResource,
  type HoldfastVolumeConfig,
} from "../providers/cdktf/index.js";
