export {
  type AgentConfig,
  type AgentConfigInput,
  AgentConfigSchema,
  HostPort,
  loadAgentConfig,
  Name,
} from "./config.js";
