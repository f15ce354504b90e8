import { z } from "zod";
import { NodeInfoSchema } from "../cluster/index.js";
import { VOLUME_KEYS, type VolumeKey } from "../volume-spec/index.js";
import { QuarantineRecordSchema } from "../volumes/index.js";
import { TokenRecordSchema } from "./tokens.js";

/**
 * The JSON Schemas of the API's answers, for the OpenAPI document. Each is derived from what produces the answer
 * where there is a schema for it (the key table for a volume's keys, the store's record schemas for nodes, tokens
 * and quarantined replicas); the rest of a volume's view is written here. bad-input.test.ts checks real answers
 * against them, so neither can drift from the other.
 */
type JsonSchema = Record<string, unknown>;

const fromZod = (schema: z.ZodType): JsonSchema => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: "output", unrepresentable: "any" });
  return rest;
};

const object = (properties: Record<string, JsonSchema>, optional: string[] = []): JsonSchema => ({
  type: "object",
  required: Object.keys(properties).filter((name) => !optional.includes(name)),
  properties,
  additionalProperties: false,
});

const nullable = (type: string): JsonSchema => ({ type: [type, "null"] });
const strings = { type: "array", items: { type: "string" } };

/** A key's value as a view shows it: its JSON form, never the spec-grammar string. */
function valueSchema(key: VolumeKey): JsonSchema {
  const { kind } = key;
  switch (kind.type) {
    case "size":
    case "int":
      return { type: "integer", minimum: kind.min, maximum: kind.max };
    case "bool":
      return { type: "boolean" };
    case "enum":
      return { type: "string", enum: [...(kind.values ?? [])] };
    case "list":
      return strings;
    case "map":
      return { type: "object", additionalProperties: { type: "string" } };
    case "schedule":
      return { type: "array", items: { type: "object" } };
    default:
      return { type: "string" };
  }
}

const specFields = Object.fromEntries(
  VOLUME_KEYS.map((key) => [key.field, { ...valueSchema(key), description: key.doc }]),
);

/** A volume as every volume route answers it (VolumeView). */
export const volumeView = object(
  {
    ...specFields,
    id: { type: "string" },
    spec: { type: "string", description: "The canonical inline spec." },
    state: { type: "string", enum: ["attached", "detached"] },
    attachedOn: nullable("string"),
    epoch: nullable("integer"),
    nbd: nullable("string"),
    devicePath: nullable("string"),
    mountPath: nullable("string"),
    replicas: {
      type: "array",
      items: object({
        node: { type: "string" },
        pool: { type: "string" },
        state: { type: "string" },
        bytesOnDisk: nullable("integer"),
        resync: {
          anyOf: [object({ done: { type: "integer" }, total: { type: "integer" } }), { type: "null" }],
        },
      }),
    },
    health: { type: "string", enum: ["healthy", "degraded"] },
    createdAt: { type: "string" },
  },
  // parent is left out of a view when the volume has none.
  ["parent"],
);

/** A volume set (scale above 1). */
export const volumeSet = object({
  name: { type: "string" },
  scale: { type: "integer", minimum: 2 },
  members: { type: "array", items: volumeView },
});

export const quarantined = fromZod(QuarantineRecordSchema);

/** A node with its state and the count of its quarantined replicas. */
export const nodeStatus = (() => {
  const info = fromZod(NodeInfoSchema) as { properties: Record<string, JsonSchema>; required: string[] };
  return {
    ...info,
    required: [...info.required, "state", "quarantined"],
    properties: {
      ...info.properties,
      state: { type: "string", enum: ["up", "down"] },
      quarantined: { type: "integer" },
    },
    additionalProperties: false,
  };
})();

export const token = fromZod(TokenRecordSchema.omit({ hash: true }));
export const newToken = fromZod(TokenRecordSchema.omit({ hash: true }).extend({ token: z.string() }));

export const cluster = object({
  id: { type: "string" },
  store: { type: "string" },
  nodes: { type: "array", items: nodeStatus },
  quarantine: { type: "array", items: quarantined },
  volumes: object({
    total: { type: "integer" },
    attached: { type: "integer" },
    detached: { type: "integer" },
    degraded: strings,
  }),
});

export const check = object({
  name: { type: "string" },
  replicas: strings,
  regions: { type: "integer" },
  differing: { type: "array", items: { type: "integer" } },
  identical: { type: "boolean" },
});

export const listOf = (items: JsonSchema): JsonSchema => ({ type: "array", items });
