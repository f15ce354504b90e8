export { InlineIo, inlineIo } from "./inline-io.js";
export { CLUSTER_SIZE, REGION_SIZE } from "./layout.js";
export { type CreateReplicaOptions, FencedError, Replica, zeroChecksum } from "./replica.js";
