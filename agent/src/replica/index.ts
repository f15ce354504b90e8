export { EpochGate } from "./epoch-gate.js";
export { InlineIo, inlineIo } from "./inline-io.js";
export { CLUSTER_SIZE } from "./layout.js";
export { type CreateReplicaOptions, Replica, ReplicaSession, zeroChecksum } from "./replica.js";
