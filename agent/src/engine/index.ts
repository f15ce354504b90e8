export type { BlockDevice } from "./block-device.js";
export {
  Engine,
  type EngineOptions,
  type ReplicaTarget,
  type ResyncPlan,
  type ResyncProgress,
  type ServingLease,
} from "./engine.js";
