export {
  Engine,
  type EngineOptions,
  type ResyncPlan,
  type ResyncProgress,
} from "./engine.js";
