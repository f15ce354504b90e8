// What the engine, the replicas and the transport agree on. A leaf: it imports nothing of the agent but errors,
// so each side can depend on it without depending on the other.
export type { BlockDevice } from "./block-device.js";
export { FencedError } from "./fenced-error.js";
export { REGION_SIZE } from "./region.js";
export type { ReplicaTarget, ServingLease } from "./replica-target.js";
export { VolumeId } from "./volume-id.js";
