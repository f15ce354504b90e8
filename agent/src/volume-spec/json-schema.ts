import { keyDoc, VOLUME_KEYS, type VolumeKey } from "./keys.js";

type JsonSchema = Record<string, unknown>;

/** Every key also takes its spec-grammar string, so each schema allows a string beside its JSON type. */
function schemaOf(key: VolumeKey): JsonSchema {
  const { kind } = key;
  const grammar = { type: "string", description: `in the spec grammar: ${kind.summary}` };
  switch (kind.type) {
    case "string":
      return { type: "string" };
    case "enum":
      return { type: "string", enum: [...(kind.values ?? [])] };
    case "size":
      return {
        anyOf: [{ type: "integer", minimum: kind.min, maximum: kind.max, description: "bytes" }, grammar],
      };
    case "int":
      return { anyOf: [{ type: "integer", minimum: kind.min, maximum: kind.max }, grammar] };
    case "bool":
      return { anyOf: [{ type: "boolean" }, grammar] };
    case "list":
      return { anyOf: [{ type: "array", items: { type: "string" } }, grammar] };
    case "map":
      return { anyOf: [{ type: "object", additionalProperties: { type: "string" } }, grammar] };
    case "schedule":
      return grammar;
  }
}

/**
 * The volume keys as JSON Schema properties, for the REST API's OpenAPI document: derived from VOLUME_KEYS like
 * the parser, so the document cannot drift from what the API accepts. Aliases are accepted too but not listed.
 */
export function volumeKeysJsonSchema(keys: readonly VolumeKey[] = VOLUME_KEYS): {
  type: "object";
  properties: Record<string, JsonSchema>;
} {
  const properties: Record<string, JsonSchema> = {};
  for (const key of keys) {
    properties[key.name] = { ...schemaOf(key), description: keyDoc(key) };
  }
  return { type: "object", properties };
}
