import type { VolumeSpec } from "../../agent/src/volume-spec/index.js";
import { formatSize, parseSpec, specFromFields, withDefaults } from "../../agent/src/volume-spec/index.js";
import { apiDiagnostic, HoldfastClient, type VolumeSetView, type VolumeView } from "./client.js";
import {
  type AttributeSchema,
  type Diagnostic,
  diagnosticOf,
  error,
  hasErrors,
  isUnknown,
  type ObjectValue,
  UNKNOWN,
  type Value,
  warning,
} from "./protocol/index.js";
import { type Operation, timeoutFor, timeoutsBlock, validateTimeouts } from "./timeouts.js";
import type { PlanResult, ProviderContext, ResourceType, Result } from "./types.js";
import {
  attributeOfField,
  sameValue,
  toSpecValue,
  toTerraform,
  VOLUME_ATTRIBUTES,
  type VolumeAttribute,
  volumeAttributeSchemas,
} from "./volume-attributes.js";

/*
 * Model. `holdfast_volume` has the volume's keys as separate attributes (one per row of the spec table, see
 * volume-attributes.ts), or `spec`, an inline spec string: exactly one style per resource. Either way every key
 * attribute ends up in state, filled in from the spec or from the table's defaults, so a plan compares like with
 * like and drift shows up on the attribute that drifted.
 */

/** Attributes only the agent sets. */
const COMPUTED = ["id", "state", "replica_nodes", "attached_node", "created_at", "members"] as const;

const NAME = VOLUME_ATTRIBUTES.find((attr) => attr.key.field === "name") as VolumeAttribute;
const SIZE = VOLUME_ATTRIBUTES.find((attr) => attr.key.field === "size") as VolumeAttribute;
const REPLICAS = VOLUME_ATTRIBUTES.find((attr) => attr.key.field === "repl") as VolumeAttribute;

// Metadata and schema.

const computed = (name: string, type: AttributeSchema["type"], description: string): AttributeSchema => ({
  name,
  type,
  description,
  computed: true,
});

const schema = {
  description:
    "A Holdfast volume: a replicated block device with a file system, given as separate attributes or as one " +
    "inline `spec`. Size grows in place and never shrinks; replicas, labels and the other online keys change in " +
    "place; name, filesystem and placement replace the volume.",
  attributes: [
    computed("id", "string", "The volume's id, assigned by the agent."),
    {
      name: "spec",
      type: "string",
      optional: true,
      description:
        "The whole volume as an inline spec, e.g. `name=pgdata,size=20G,repl=3`, instead of separate attributes " +
        "(give one or the other). The separate attributes are then computed from it.",
    },
    ...volumeAttributeSchemas("resource").map((attr) =>
      attr.name === "name"
        ? {
            ...attr,
            description: `The volume's name (${NAME.key.kind.summary}). Required unless \`spec\` is given. Changing it replaces the volume.`,
          }
        : attr,
    ),
    computed("state", "string", "`attached` while a node serves the volume's I/O, else `detached`."),
    computed("replica_nodes", ["list", "string"], "Nodes that hold a replica of the volume."),
    computed("attached_node", "string", "The node the volume is attached on, or null."),
    computed("created_at", "string", "When the volume was created (RFC 3339)."),
    computed(
      "members",
      ["list", "string"],
      "With `scale` above 1 the resource is a set of volumes: their names, NAME.1 to NAME.N. Null for one volume.",
    ),
  ] satisfies AttributeSchema[],
  blocks: [timeoutsBlock],
};

// Validation: the spec table's parser, attribute by attribute, so each error points at its attribute.

const given = (config: ObjectValue, attr: VolumeAttribute) => config[attr.name] ?? null;

function validate(config: ObjectValue): Diagnostic[] {
  const diagnostics = validateTimeouts(config.timeouts ?? null);
  const spec = config.spec ?? null;
  if (spec !== null) {
    for (const attr of VOLUME_ATTRIBUTES) {
      if (given(config, attr) !== null)
        diagnostics.push(
          error(
            "Conflicting volume attributes",
            `"${attr.name}" cannot be set together with "spec": give the volume either as one spec string or as separate attributes.`,
            [attr.name],
          ),
        );
    }
    if (typeof spec === "string") {
      try {
        parseSpec(spec);
      } catch (err) {
        diagnostics.push(diagnosticOf(err, "Invalid volume spec", () => ["spec"]));
      }
    }
    return diagnostics;
  }
  if (given(config, VOLUME_ATTRIBUTES[0] as VolumeAttribute) === null)
    diagnostics.push(
      error("Missing volume name", 'Set "name", or give the whole volume as "spec".', ["name"]),
    );
  const fields: Record<string, unknown> = {};
  let allKnown = true;
  for (const attr of VOLUME_ATTRIBUTES) {
    const value = given(config, attr);
    if (value === null) continue;
    if (isUnknown(value)) {
      allKnown = false;
      continue;
    }
    try {
      fields[attr.key.name] = toSpecValue(attr, value);
    } catch (err) {
      diagnostics.push(diagnosticOf(err, `Invalid ${attr.name}`, () => [attr.name]));
    }
  }
  // Rules between keys (size a multiple of the block size, shared or sharedv4), once every key reads alone.
  if (allKnown && !hasErrors(diagnostics)) {
    try {
      specFromFields(fields);
      withDefaults({ name: "x", ...fields });
    } catch (err) {
      diagnostics.push(diagnosticOf(err, "Invalid volume", attributeOfField));
    }
  }
  return diagnostics;
}

// Plan.

/** What the configuration asks each key attribute to be, keeping the prior state's spelling of equal values. */
function desiredValues(config: ObjectValue, prior: ObjectValue | null): Result<ObjectValue> {
  const value: ObjectValue = {};
  const keep = (attr: VolumeAttribute, target: Value): Value => {
    const before = prior?.[attr.name] ?? null;
    return before !== null && sameValue(attr, before, target) ? before : target;
  };
  const spec = config.spec ?? null;
  if (isUnknown(spec)) {
    for (const attr of VOLUME_ATTRIBUTES) value[attr.name] = UNKNOWN;
    return { value, diagnostics: [] };
  }
  if (typeof spec === "string") {
    let parsed: VolumeSpec;
    try {
      parsed = withDefaults(parseSpec(spec));
    } catch (err) {
      return { value, diagnostics: [diagnosticOf(err, "Invalid volume spec", () => ["spec"])] };
    }
    for (const attr of VOLUME_ATTRIBUTES)
      value[attr.name] = keep(attr, toTerraform(attr, parsed[attr.key.field]));
    return { value, diagnostics: [] };
  }
  for (const attr of VOLUME_ATTRIBUTES) {
    const set = given(config, attr);
    // A value in the configuration is planned as written: Terraform requires the plan to match it exactly.
    value[attr.name] = set !== null ? set : keep(attr, toTerraform(attr, attr.key.default));
  }
  return { value, diagnostics: [] };
}

const bytes = (value: Value): number | undefined => {
  try {
    return value === null || isUnknown(value) ? undefined : (toSpecValue(SIZE, value) as number);
  } catch {
    return undefined;
  }
};

/** The sizes in bytes when `next` asks for less than the volume has, as after a resize outside Terraform. */
function shrinkOf(prior: ObjectValue, next: ObjectValue): { from: number; to: number } | undefined {
  const [from, to] = [bytes(prior[SIZE.name] ?? null), bytes(next[SIZE.name] ?? null)];
  return from !== undefined && to !== undefined && to < from ? { from, to } : undefined;
}

const shrinkDetail = ({ from, to }: { from: number; to: number }, outcome: string) =>
  `The volume is ${formatSize(from)} (${from} bytes) and the configuration asks for ${formatSize(to)} (${to} bytes). A volume only grows, so ${outcome}: raise size to ${formatSize(from)} in the configuration (it was probably resized outside Terraform), or replace the volume (its data is lost) by changing its name. Destroying it works either way.`;

/** The `fixed` attributes whose value `next` changes: no apply can make them. */
function fixedChanges(prior: ObjectValue, next: ObjectValue): VolumeAttribute[] {
  return VOLUME_ATTRIBUTES.filter(
    (attr) =>
      attr.mutability === "fixed" &&
      !isUnknown(next[attr.name] ?? null) &&
      !sameValue(attr, prior[attr.name] ?? null, next[attr.name] ?? null),
  );
}

const fixedDetail = (attr: VolumeAttribute) =>
  `"${attr.name}" cannot change once the volume exists, not even by replacing it: ${attr.key.doc} Set it back to its value in the state, or make a new resource.`;

function plan({ prior, config }: { prior: ObjectValue | null; config: ObjectValue | null }): PlanResult {
  if (config === null) return { planned: null, requiresReplace: [], diagnostics: [] };
  const desired = desiredValues(config, prior);
  if (hasErrors(desired.diagnostics))
    return { planned: null, requiresReplace: [], diagnostics: desired.diagnostics };
  const planned: ObjectValue = {
    spec: config.spec ?? null,
    timeouts: config.timeouts ?? null,
    ...desired.value,
  };
  const requiresReplace: string[][] = [];
  const diagnostics: Diagnostic[] = [];
  if (prior) {
    for (const attr of VOLUME_ATTRIBUTES) {
      const next = planned[attr.name] ?? null;
      if (
        attr.mutability === "replace" &&
        (isUnknown(next) || !sameValue(attr, prior[attr.name] ?? null, next))
      )
        requiresReplace.push([attr.name]);
    }
    // Warnings, as for a shrink below: the plan shows the change, and apply refuses it.
    for (const attr of fixedChanges(prior, planned))
      diagnostics.push(
        warning(`Cannot change ${attr.name}`, fixedDetail(attr), pathOfFieldIn(planned)(attr.key.name)),
      );
    const shrink = requiresReplace.length === 0 ? shrinkOf(prior, planned) : undefined;
    // A warning, not an error: Terraform runs this same normal plan before every destroy and an error here would
    // block the destroy. The plan shows the drift (size 2G -> 1G); apply refuses it and changes nothing.
    if (shrink)
      diagnostics.push(
        warning(
          "Volumes cannot shrink",
          shrinkDetail(shrink, "applying this plan fails"),
          pathOfFieldIn(planned)("size"),
        ),
      );
  }
  if (!prior || requiresReplace.length > 0) {
    for (const name of COMPUTED) planned[name] = UNKNOWN;
  } else {
    for (const name of COMPUTED) planned[name] = prior[name] ?? null;
    // Adding or removing replicas moves them: which nodes hold them is known only afterwards.
    if (!sameValue(REPLICAS, prior[REPLICAS.name] ?? null, planned[REPLICAS.name] ?? null))
      planned.replica_nodes = UNKNOWN;
  }
  return { planned, requiresReplace, diagnostics };
}

// Create, read, update, delete, import.

/** A volume as the resource sees it: one volume, or a set shown as one (see asView). */
type ResourceView = VolumeView & { members?: string[] };

/**
 * A set as one resource: its first member's keys under the set's name (every member has the same ones), the
 * set's name as its id, every member's replicas, attached while any member is.
 */
function asView(answer: VolumeView | VolumeSetView): ResourceView {
  if (!("members" in answer)) return answer;
  const [first] = answer.members;
  if (!first) throw new Error(`volume set ${answer.name} has no members`);
  return {
    ...first,
    id: answer.name,
    name: answer.name,
    state: answer.members.some((m) => m.state === "attached") ? "attached" : "detached",
    attachedOn: null,
    replicas: answer.members.flatMap((m) => m.replicas),
    members: answer.members.map((m) => m.name),
  };
}

const isSet = (state: ObjectValue | null) => typeof state?.scale === "number" && state.scale > 1;

/** The volume or set `state` describes, as it is now; null when it is gone. */
async function fetchView(client: HoldfastClient, state: ObjectValue, signal: AbortSignal) {
  if (isSet(state)) {
    const set = await client.volumeSet(String(state.name), signal);
    return set && asView(set);
  }
  return client.volume(String(state.id ?? state.name), signal);
}

/** The state for a volume as the agent shows it, keeping `base`'s spelling of each value that is the same. */
function stateFromView(view: ResourceView, base: ObjectValue | null): ObjectValue {
  const state: ObjectValue = { id: view.id, spec: base?.spec ?? null, timeouts: base?.timeouts ?? null };
  for (const attr of VOLUME_ATTRIBUTES) {
    const actual = toTerraform(attr, view[attr.key.field]);
    const before = base?.[attr.name] ?? null;
    state[attr.name] =
      before !== null && !isUnknown(before) && sameValue(attr, before, actual) ? before : actual;
  }
  state.state = view.state;
  state.replica_nodes = view.replicas.map((replica) => replica.node);
  state.attached_node = view.attachedOn;
  state.created_at = view.createdAt;
  state.members = view.members ?? null;
  return state;
}

/** Where an agent error about a key points: `spec` when the volume is given as a spec, else the key's attribute. */
const pathOfFieldIn = (state: ObjectValue | null) => (field: string | undefined) =>
  typeof state?.spec === "string" ? ["spec"] : attributeOfField(field);

/** The client, and a signal that fires on StopProvider or when the operation's time is up. */
function begin(ctx: ProviderContext, timeouts: Value, op: Operation) {
  const client = ctx.client();
  const signal = AbortSignal.any([ctx.stopSignal, AbortSignal.timeout(timeoutFor(timeouts, op))]);
  return { client, signal };
}

/** The create body: the spec, or the keys the configuration sets (the agent fills in the same defaults). */
function createBody(config: ObjectValue): Record<string, unknown> {
  if (typeof config.spec === "string") return { spec: config.spec };
  const body: Record<string, unknown> = {};
  for (const attr of VOLUME_ATTRIBUTES) {
    const value = given(config, attr);
    if (value !== null) body[attr.key.name] = value;
  }
  return body;
}

/** The PATCH body: every in-place key whose value changes. */
function updateBody(prior: ObjectValue, planned: ObjectValue): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const attr of VOLUME_ATTRIBUTES) {
    const next = planned[attr.name] ?? null;
    if (attr.mutability === "online" && !sameValue(attr, prior[attr.name] ?? null, next))
      body[attr.key.name] = next;
  }
  return body;
}

async function create(
  client: HoldfastClient,
  signal: AbortSignal,
  planned: ObjectValue,
  config: ObjectValue,
) {
  const view = asView(await client.createVolume(createBody(config), signal));
  return stateFromView(view, planned);
}

async function update(client: HoldfastClient, signal: AbortSignal, prior: ObjectValue, planned: ObjectValue) {
  const body = updateBody(prior, planned);
  if (Object.keys(body).length > 0) {
    const targets = isSet(prior) ? ((prior.members ?? []) as string[]) : [String(prior.id)];
    for (const target of targets) await client.updateVolume(target, body, signal);
  }
  const view = await fetchView(client, prior, signal);
  if (!view) throw new Error(`volume ${String(prior.name)} no longer exists`);
  return stateFromView(view, planned);
}

async function apply(
  ctx: ProviderContext,
  {
    prior,
    planned,
    config,
  }: { prior: ObjectValue | null; planned: ObjectValue | null; config: ObjectValue | null },
): Promise<Result<ObjectValue | null>> {
  const op: Operation = planned === null ? "delete" : prior === null ? "create" : "update";
  const { client, signal } = begin(ctx, (planned ?? prior)?.timeouts ?? null, op);
  if (!(client instanceof HoldfastClient)) return { value: prior, diagnostics: [client] };
  try {
    if (planned === null) {
      if (isSet(prior)) await client.deleteVolumeSet(String(prior?.name), signal);
      else await client.deleteVolume(String(prior?.id), signal);
      return { value: null, diagnostics: [] };
    }
    if (prior === null)
      return { value: await create(client, signal, planned, config ?? {}), diagnostics: [] };
    const fixed = fixedChanges(prior, planned);
    if (fixed.length > 0)
      return {
        value: prior,
        diagnostics: fixed.map((attr) =>
          error(`Cannot change ${attr.name}`, fixedDetail(attr), pathOfFieldIn(prior)(attr.key.name)),
        ),
      };
    const shrink = shrinkOf(prior, planned);
    if (shrink)
      return {
        value: prior,
        diagnostics: [
          error(
            "Volumes cannot shrink",
            shrinkDetail(shrink, "nothing was changed"),
            pathOfFieldIn(prior)("size"),
          ),
        ],
      };
    return { value: await update(client, signal, prior, planned), diagnostics: [] };
  } catch (err) {
    const summary = `Cannot ${op} volume`;
    return { value: prior, diagnostics: [apiDiagnostic(err, summary, pathOfFieldIn(planned ?? prior))] };
  }
}

async function read(ctx: ProviderContext, state: ObjectValue): Promise<Result<ObjectValue | null>> {
  const client = ctx.client();
  if (!(client instanceof HoldfastClient)) return { value: state, diagnostics: [client] };
  try {
    const view = await fetchView(client, state, ctx.stopSignal);
    // Gone behind Terraform's back: a null state makes the next plan create it again.
    return { value: view ? stateFromView(view, state) : null, diagnostics: [] };
  } catch (err) {
    return { value: state, diagnostics: [apiDiagnostic(err, "Cannot read volume")] };
  }
}

/**
 * `terraform import holdfast_volume.x NAME_OR_ID` gives the state in attribute style, as the agent shows the
 * volume. An id that is an inline spec (`name=pgdata,size=20G`) imports the volume it names in spec style, with
 * that spec: a configuration with the same `spec` then plans nothing (an import cannot see the configuration).
 */
async function importVolume(ctx: ProviderContext, id: string): Promise<Result<ObjectValue | null>> {
  const client = ctx.client();
  if (!(client instanceof HoldfastClient)) return { value: null, diagnostics: [client] };
  let name = id;
  if (id.includes("=")) {
    try {
      name = parseSpec(id).name;
    } catch (err) {
      return { value: null, diagnostics: [diagnosticOf(err, "Invalid volume spec to import")] };
    }
  }
  try {
    const found =
      (await client.volume(name, ctx.stopSignal)) ?? (await client.volumeSet(name, ctx.stopSignal));
    const view = found && asView(found);
    if (!view)
      return {
        value: null,
        diagnostics: [error("Cannot import volume", `No volume has the name or id "${name}".`)],
      };
    const state = stateFromView(view, null);
    return { value: name === id ? state : { ...state, spec: id }, diagnostics: [] };
  } catch (err) {
    return { value: null, diagnostics: [apiDiagnostic(err, "Cannot import volume")] };
  }
}

export const volumeResource: ResourceType = {
  typeName: "holdfast_volume",
  schema,
  validate,
  plan,
  apply,
  read,
  import: importVolume,
};
