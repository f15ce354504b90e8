import {
  type AgentConfigInput,
  AgentConfigSchema,
  type SharedSettingName,
} from "../agent/src/config/index.js";
import { SpecError } from "../agent/src/errors.js";
import type { IConstruct } from "./cdktf.js";

/**
 * The agent settings a construct passes through unchanged to every node's agent config: the rows of the agent's
 * settings table (agent/src/config/settings.ts) whose scope is `shared`, typed by their schemas, so a new shared
 * setting is a prop with no edit here and a renamed or retyped one fails to compile instead of at boot.
 */
export type AgentSettings = Partial<Pick<AgentConfigInput, SharedSettingName>>;

/** The agent's state directory on every node unless `agent.dataDir` says otherwise. */
export const DEFAULT_DATA_DIR = "/var/lib/holdfast";

/** The config file the AWS user data and the Chef cookbook both write, and the agent reads with `--config`. */
export const AGENT_CONFIG_PATH = "/etc/holdfast/agent.json";

/**
 * Checks a rendered agent config against the agent's schema, so a bad value fails synthesis with the key at fault
 * rather than a node failing to boot. Returns the config unchanged: what is written is what was checked.
 */
export function checkedAgentConfig(scope: IConstruct, config: AgentConfigInput): AgentConfigInput {
  const parsed = AgentConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(scope, `agent.${issue?.path.join(".") ?? ""}`, issue?.message ?? "invalid");
  }
  return config;
}

/** A prop error that names the prop and the construct: `subnets: at least one subnet is required (in stack/aws)`. */
export function invalid(scope: IConstruct, prop: string, message: string): SpecError {
  return new SpecError(prop, `${message} (in ${scope.node.path})`);
}
