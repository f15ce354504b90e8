export {
  type AgentConfig,
  type AgentConfigInput,
  AgentConfigSchema,
  HostPort,
  loadAgentConfig,
  loadStoreSettings,
  Name,
  type StoreSettings,
} from "./config.js";
