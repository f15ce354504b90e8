export {
  type AgentConfig,
  type AgentConfigInput,
  AgentConfigSchema,
  loadAgentConfig,
  loadStoreSettings,
  type StoreSettings,
} from "./config.js";
export {
  AGENT_SETTINGS,
  defaultOf,
  type Setting,
  type SettingFlag,
  type SettingName,
  type SharedSettingName,
  settingFlags,
} from "./settings.js";
export { HostPort, joinHostPort, Name, splitHostPort } from "./values.js";
