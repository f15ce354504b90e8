import { type AgentConfigInput, AgentConfigSchema } from "../agent/src/config/index.js";
import { SpecError } from "../agent/src/errors.js";
import type { IConstruct } from "./cdktf.js";

/**
 * The agent settings a construct passes through unchanged to every node's agent config. Typed from the agent's
 * own schema (agent/src/config), so a renamed or retyped key fails to compile here instead of at boot.
 */
export type AgentSettings = Partial<
  Pick<
    AgentConfigInput,
    "dataDir" | "mountDir" | "leaseTtl" | "logLevel" | "inlineIo" | "pluginSocket" | "csiSocket"
  >
>;

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
