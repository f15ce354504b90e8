import {
  type BlockSchema,
  type CtyType,
  type Diagnostic,
  decodeValue,
  diagnosticMessage,
  encodeValue,
  error,
  fromJsonState,
  type ObjectValue,
  objectType,
  schemaMessage,
  type Value,
} from "../protocol/index.js";
import {
  dataSources,
  HoldfastProvider,
  providerSchema,
  resources,
  validateProviderConfig,
} from "../provider.js";
import type { DataSourceType, ResourceType } from "../types.js";
import type { Logger } from "./log.js";

/** A DynamicValue as proto-loader hands it over (bytes as Buffers). */
interface DynamicValue {
  msgpack?: Buffer;
  json?: Buffer;
}

export type Request = Record<string, unknown> & { type_name?: string };
export type Handler = (request: Request) => Promise<Record<string, unknown>>;

const dynamic = (value: Value, type: CtyType) => ({ msgpack: Buffer.from(encodeValue(value, type)) });
const decode = (value: unknown, type: CtyType) =>
  decodeValue((value as DynamicValue | undefined)?.msgpack, type);
const diagnostics = (list: Diagnostic[]) => list.map(diagnosticMessage);

/**
 * The tfplugin6 Provider service: decodes each request's values with the schema of its type, calls the resource
 * or data source, and encodes the answer. Every failure is a diagnostic in the answer, never a gRPC error.
 */
export function providerService(logger: Logger): Record<string, Handler> {
  const provider = new HoldfastProvider(logger);
  const resourceTypes = new Map(resources.map((r) => [r.typeName, r]));
  const dataTypes = new Map(dataSources.map((d) => [d.typeName, d]));
  const types = new Map<BlockSchema, CtyType>();
  const typeOf = (block: BlockSchema): CtyType => {
    const type = types.get(block) ?? objectType(block);
    types.set(block, type);
    return type;
  };
  const providerType = typeOf(providerSchema);

  /** The resource (or data source) a request names, or a diagnostic when the provider has none of that type. */
  function lookup<T extends ResourceType | DataSourceType>(
    map: Map<string, T>,
    request: Request,
  ): T | Diagnostic {
    return (
      map.get(request.type_name ?? "") ??
      error("Unknown type", `The holdfast provider has no "${request.type_name}".`)
    );
  }
  const isDiagnostic = (x: unknown): x is Diagnostic =>
    typeof x === "object" && x !== null && "severity" in x;

  return {
    async GetMetadata() {
      return {
        server_capabilities: {},
        resources: resources.map((r) => ({ type_name: r.typeName })),
        data_sources: dataSources.map((d) => ({ type_name: d.typeName })),
        diagnostics: [],
      };
    },

    async GetProviderSchema() {
      return {
        provider: schemaMessage(providerSchema),
        resource_schemas: Object.fromEntries(resources.map((r) => [r.typeName, schemaMessage(r.schema)])),
        data_source_schemas: Object.fromEntries(
          dataSources.map((d) => [d.typeName, schemaMessage(d.schema)]),
        ),
        server_capabilities: {},
        diagnostics: [],
      };
    },

    async ValidateProviderConfig(request) {
      const config = decode(request.config, providerType) as ObjectValue;
      return { diagnostics: diagnostics(validateProviderConfig(config)) };
    },

    async ConfigureProvider(request) {
      const config = decode(request.config, providerType) as ObjectValue;
      return { diagnostics: diagnostics(await provider.configure(config)) };
    },

    async ValidateResourceConfig(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const config = decode(request.config, typeOf(resource.schema)) as ObjectValue;
      return { diagnostics: diagnostics(resource.validate(config)) };
    },

    async ValidateDataResourceConfig(request) {
      const source = lookup(dataTypes, request);
      if (isDiagnostic(source)) return { diagnostics: diagnostics([source]) };
      const config = decode(request.config, typeOf(source.schema)) as ObjectValue;
      return { diagnostics: diagnostics(source.validate(config)) };
    },

    /** Schema version 0 is the only one so far: the stored state is read into the current attributes. */
    async UpgradeResourceState(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const type = typeOf(resource.schema);
      const raw = (request.raw_state as { json?: Uint8Array } | undefined)?.json;
      const state =
        raw && raw.length > 0 ? fromJsonState(JSON.parse(Buffer.from(raw).toString("utf8")), type) : null;
      return { upgraded_state: dynamic(state, type), diagnostics: [] };
    },

    async ReadResource(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const type = typeOf(resource.schema);
      const state = decode(request.current_state, type) as ObjectValue | null;
      if (state === null) return { new_state: dynamic(null, type), diagnostics: [] };
      const result = await resource.read(provider, state);
      return {
        new_state: dynamic(result.value, type),
        private: request.private,
        diagnostics: diagnostics(result.diagnostics),
      };
    },

    async PlanResourceChange(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const type = typeOf(resource.schema);
      const result = resource.plan({
        prior: decode(request.prior_state, type) as ObjectValue | null,
        config: decode(request.config, type) as ObjectValue | null,
      });
      return {
        planned_state: dynamic(result.planned, type),
        requires_replace: result.requiresReplace.map((path) => ({
          steps: path.map((name) => ({ attribute_name: name })),
        })),
        planned_private: request.prior_private,
        diagnostics: diagnostics(result.diagnostics),
      };
    },

    async ApplyResourceChange(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const type = typeOf(resource.schema);
      const result = await resource.apply(provider, {
        prior: decode(request.prior_state, type) as ObjectValue | null,
        planned: decode(request.planned_state, type) as ObjectValue | null,
        config: decode(request.config, type) as ObjectValue | null,
      });
      return {
        new_state: dynamic(result.value, type),
        private: request.planned_private,
        diagnostics: diagnostics(result.diagnostics),
      };
    },

    async ImportResourceState(request) {
      const resource = lookup(resourceTypes, request);
      if (isDiagnostic(resource)) return { diagnostics: diagnostics([resource]) };
      const result = await resource.import(provider, String(request.id ?? ""));
      const imported =
        result.value === null
          ? []
          : [{ type_name: resource.typeName, state: dynamic(result.value, typeOf(resource.schema)) }];
      return { imported_resources: imported, diagnostics: diagnostics(result.diagnostics) };
    },

    async ReadDataSource(request) {
      const source = lookup(dataTypes, request);
      if (isDiagnostic(source)) return { diagnostics: diagnostics([source]) };
      const type = typeOf(source.schema);
      const result = await source.read(provider, decode(request.config, type) as ObjectValue);
      return { state: dynamic(result.value, type), diagnostics: diagnostics(result.diagnostics) };
    },

    async StopProvider() {
      provider.cancel();
      return { Error: "" };
    },
  };
}
