import { apiDiagnostic, HoldfastClient } from "./client.js";
import { type AttributeSchema, error, isUnknown, type ObjectValue } from "./protocol/index.js";
import type { DataSourceType, ProviderContext, Result } from "./types.js";
import {
  attributeOfField,
  toSpecValue,
  toTerraform,
  VOLUME_ATTRIBUTES,
  volumeAttributeSchemas,
} from "./volume-attributes.js";

/* Model: one volume, looked up by name; every key attribute and the agent's own attributes, all read-only. */

const NAME = VOLUME_ATTRIBUTES[0];

const schema = {
  description: "Reads one existing Holdfast volume by name: its keys, state, replicas and attachment.",
  attributes: [
    { name: "id", type: "string", computed: true, description: "The volume's id." },
    ...volumeAttributeSchemas("data").map((attr) =>
      attr.name === "name"
        ? { ...attr, computed: false, required: true, description: "The volume to read (a name or an id)." }
        : attr,
    ),
    { name: "spec", type: "string", computed: true, description: "The volume's canonical inline spec." },
    { name: "state", type: "string", computed: true, description: "`attached` or `detached`." },
    {
      name: "replica_nodes",
      type: ["list", "string"],
      computed: true,
      description: "Nodes that hold a replica.",
    },
    {
      name: "attached_node",
      type: "string",
      computed: true,
      description: "The node it is attached on, or null.",
    },
    { name: "created_at", type: "string", computed: true, description: "When it was created (RFC 3339)." },
  ] satisfies AttributeSchema[],
};

function validate(config: ObjectValue) {
  const name = config.name ?? null;
  if (typeof name !== "string" || !NAME) return [];
  try {
    toSpecValue(NAME, name);
    return [];
  } catch (err) {
    return [error("Invalid name", err instanceof Error ? err.message : String(err), ["name"])];
  }
}

async function read(ctx: ProviderContext, config: ObjectValue): Promise<Result<ObjectValue | null>> {
  const client = ctx.client();
  if (!(client instanceof HoldfastClient)) return { value: null, diagnostics: [client] };
  const name = config.name;
  if (typeof name !== "string" || isUnknown(name)) return { value: null, diagnostics: [] };
  try {
    const view = await client.volume(name, ctx.stopSignal);
    if (!view)
      return {
        value: null,
        diagnostics: [error("Volume not found", `No volume is named "${name}".`, ["name"])],
      };
    const state: ObjectValue = { id: view.id, spec: view.spec };
    for (const attr of VOLUME_ATTRIBUTES) state[attr.name] = toTerraform(attr, view[attr.key.field]);
    // The name as the configuration gave it (it may be the id), so Terraform sees its input unchanged.
    state.name = name;
    state.state = view.state;
    state.replica_nodes = view.replicas.map((replica) => replica.node);
    state.attached_node = view.attachedOn;
    state.created_at = view.createdAt;
    return { value: state, diagnostics: [] };
  } catch (err) {
    return { value: null, diagnostics: [apiDiagnostic(err, "Cannot read volume", attributeOfField)] };
  }
}

export const volumeDataSource: DataSourceType = { typeName: "holdfast_volume", schema, validate, read };
