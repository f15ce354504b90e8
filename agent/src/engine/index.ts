export type { BlockDevice } from "./block-device.js";
export { Engine, type EngineOptions, type ReplicaTarget } from "./engine.js";
