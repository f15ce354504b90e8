export type { BlockDevice } from "./block-device.js";
export {
  Engine,
  type EngineOptions,
  type ReplicaTarget,
  type ResyncProgress,
  type ServingLease,
} from "./engine.js";
