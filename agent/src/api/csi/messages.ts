/**
 * The CSI messages as @grpc/proto-loader hands them over (keepCase, longs as numbers, enums as names, defaults
 * filled in, `oneofs` naming the field set): only the fields Holdfast reads or writes.
 */

export type AccessMode =
  | "UNKNOWN"
  | "SINGLE_NODE_WRITER"
  | "SINGLE_NODE_READER_ONLY"
  | "MULTI_NODE_READER_ONLY"
  | "MULTI_NODE_SINGLE_WRITER"
  | "MULTI_NODE_MULTI_WRITER"
  | "SINGLE_NODE_SINGLE_WRITER"
  | "SINGLE_NODE_MULTI_WRITER";

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode?: { mode: AccessMode } | null;
  access_type?: "block" | "mount";
}

export interface CapacityRange {
  required_bytes: number;
  limit_bytes: number;
}

export interface Topology {
  segments: Record<string, string>;
}

export interface CsiVolume {
  volume_id: string;
  capacity_bytes: number;
  volume_context: Record<string, string>;
  accessible_topology: Topology[];
}

export interface CreateVolumeRequest {
  name: string;
  capacity_range: CapacityRange | null;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  volume_content_source: unknown;
  accessibility_requirements: { requisite: Topology[]; preferred: Topology[] } | null;
}

export interface VolumeIdRequest {
  volume_id: string;
}

export interface ControllerPublishRequest {
  volume_id: string;
  node_id: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
}

export interface ValidateRequest {
  volume_id: string;
  volume_context: Record<string, string>;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
}

export interface ListVolumesRequest {
  max_entries: number;
  starting_token: string;
}

export interface GetCapacityRequest {
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  accessible_topology: Topology | null;
}

export interface ExpandRequest {
  volume_id: string;
  capacity_range: CapacityRange | null;
  /** NodeExpandVolume only. */
  volume_path?: string;
}

export interface NodeStageRequest {
  volume_id: string;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
}

export interface NodePublishRequest {
  volume_id: string;
  staging_target_path: string;
  target_path: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
}

export interface NodeUnstageRequest {
  volume_id: string;
  staging_target_path: string;
}

export interface NodeUnpublishRequest {
  volume_id: string;
  target_path: string;
}
