export { VolumeCatalog } from "./catalog.js";
export { LocalReplicas } from "./local-replicas.js";
export { ClusterRecordSchema, QuarantineRecordSchema } from "./record-schemas.js";
export {
  type AttachmentRecord,
  type ClusterRecord,
  type QuarantineRecord,
  type ReplicaRecord,
  type StoreKeys,
  storeKeys,
  type VolumeRecord,
} from "./records.js";
export { Recovery } from "./recovery.js";
export { ReplicaAccess } from "./replica-access.js";
export { ReplicaAuthority } from "./replica-authority.js";
export { VolumeService, type VolumeServiceOptions } from "./service.js";
export { describeMembers, type MemberClaim, mountFreeMember, type SetTarget } from "./set-member.js";
export type { VolumeView } from "./view.js";
export {
  checkSetName,
  memberIndex,
  memberName,
  memberSpec,
  membersOf,
  type VolumeSetView,
} from "./volume-set.js";
