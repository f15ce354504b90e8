export { VolumeCatalog } from "./catalog.js";
export { type AttachmentRecord, type ReplicaRecord, storeKeys, type VolumeRecord } from "./records.js";
export { VolumeService, type VolumeServiceOptions } from "./service.js";
export type { VolumeView } from "./view.js";
