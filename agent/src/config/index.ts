export {
  type AgentConfig,
  type AgentConfigInput,
  AgentConfigSchema,
  loadAgentConfig,
  Name,
} from "./config.js";
