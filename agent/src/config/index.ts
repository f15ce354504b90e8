export {
  type AgentConfig,
  type AgentConfigInput,
  AgentConfigSchema,
  HostPort,
  joinHostPort,
  loadAgentConfig,
  loadStoreSettings,
  Name,
  type StoreSettings,
  splitHostPort,
} from "./config.js";
