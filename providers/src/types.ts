import type { HoldfastClient } from "./client.js";
import type { Logger } from "./plugin/log.js";
import type { BlockSchema, Diagnostic, ObjectValue } from "./protocol/index.js";

/** What resources and data sources get from the configured provider. */
export interface ProviderContext {
  /** The API client, or a diagnostic saying why there is none (the provider was not configured). */
  client(): HoldfastClient | Diagnostic;
  /** Aborted when Terraform calls StopProvider (Ctrl-C): in-flight requests stop. */
  stopSignal: AbortSignal;
  logger: Logger;
}

export interface Result<T> {
  value: T;
  diagnostics: Diagnostic[];
}

export interface PlanResult {
  planned: ObjectValue | null;
  /** Attribute paths whose change replaces the resource. */
  requiresReplace: string[][];
  diagnostics: Diagnostic[];
}

/** A managed resource type, in the order the scaffolding framework lays one out. */
export interface ResourceType {
  typeName: string;
  schema: BlockSchema;
  validate(config: ObjectValue): Diagnostic[];
  plan(input: { prior: ObjectValue | null; config: ObjectValue | null }): PlanResult;
  apply(
    ctx: ProviderContext,
    input: { prior: ObjectValue | null; planned: ObjectValue | null; config: ObjectValue | null },
  ): Promise<Result<ObjectValue | null>>;
  read(ctx: ProviderContext, state: ObjectValue): Promise<Result<ObjectValue | null>>;
  import(ctx: ProviderContext, id: string): Promise<Result<ObjectValue | null>>;
}

export interface DataSourceType {
  typeName: string;
  schema: BlockSchema;
  validate(config: ObjectValue): Diagnostic[];
  read(ctx: ProviderContext, config: ObjectValue): Promise<Result<ObjectValue | null>>;
}
