export { InlineWrites, inlineWrites } from "./inline-writes.js";
export { CLUSTER_SIZE, REGION_SIZE } from "./layout.js";
export { type CreateReplicaOptions, FencedError, Replica } from "./replica.js";
