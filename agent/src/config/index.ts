export { type AgentConfig, type AgentConfigInput, AgentConfigSchema, loadAgentConfig } from "./config.js";
