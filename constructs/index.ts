/**
 * CDKTF constructs for Holdfast: a cluster, its nodes on AWS and on-prem (Chef), and its volumes. Every CDKTF
 * import goes through ./cdktf.ts, so moving to CDK Terrain is one file.
 */
export { AGENT_CONFIG_PATH, type AgentSettings, DEFAULT_DATA_DIR } from "./agent-settings.js";
export { AwsClusterResources, type AwsSecretsProps, type AwsSharedProps } from "./aws-cluster-resources.js";
export {
  type AwsEndpoints,
  AwsNodeGroup,
  type AwsNodeGroupProps,
  type AwsSubnet,
  type EbsDataDrive,
  MIN_DRIVE_GIB,
} from "./aws-node-group.js";
export {
  HoldfastCluster,
  type HoldfastClusterProps,
  type HoldfastPorts,
  type IHoldfastCluster,
  type MetadataStore,
  type ReplicationPolicy,
} from "./cluster.js";
export {
  type ChefNodeJson,
  type CookbookAttributes,
  type OnPremHost,
  OnPremNodeGroup,
  type OnPremNodeGroupProps,
} from "./on-prem-node-group.js";
export { BOOT_TAGS, BOOT_VALUES } from "./user-data.js";
export { HoldfastVolume, type HoldfastVolumeProps } from "./volume.js";
export type { VolumeFields } from "./volume-fields.js";
