import {
  formatSize,
  keyDoc,
  lookupKey,
  type Mutability,
  parseKeyValue,
  VOLUME_KEYS,
  type VolumeKey,
} from "../../agent/src/volume-spec/index.js";
import type { AttributeSchema, CtyType, Value } from "./protocol/index.js";

/**
 * The volume's Terraform attributes, one per row of the spec table (VOLUME_KEYS): names, types, descriptions,
 * validation and whether a change replaces the volume all come from the row, so a new spec key is a new attribute
 * with no edit here. `holdfast_volume` and the `holdfast_volume` data source both use this list.
 */
export interface VolumeAttribute {
  /** The Terraform attribute name. */
  name: string;
  key: VolumeKey;
  type: CtyType;
  /** How a change is planned: in place (`online`), as a replacement (`replace`), or refused (`fixed`). */
  mutability: Mutability;
  description: string;
}

/** `size` takes bytes (a number) or a size string, so it is `dynamic`; every other key has one cty type. */
function ctyTypeOf(key: VolumeKey): CtyType {
  switch (key.kind.type) {
    case "size":
      return "dynamic";
    case "int":
      return "number";
    case "bool":
      return "bool";
    case "list":
      return ["list", "string"];
    case "map":
      return ["map", "string"];
    default:
      return "string";
  }
}

const CHANGE: Record<Mutability, string> = {
  online: " Changes in place.",
  replace: " Changing it replaces the volume.",
  fixed: " Cannot change once the volume exists.",
};

function describe(key: VolumeKey, name: string): string {
  const { kind } = key;
  const values = kind.type === "size" ? `Bytes (a number), or a ${kind.summary}.` : `Value: ${kind.summary}.`;
  // The default as Terraform shows it: sizes and schedules in their spec-grammar string.
  const shown =
    kind.type === "size"
      ? formatSize(key.default as number)
      : kind.type === "schedule"
        ? JSON.stringify((kind.format as (v: unknown) => string)(key.default))
        : JSON.stringify(key.default);
  const def = key.default === undefined ? "" : ` Default: \`${shown}\`.`;
  const spec = key.name === name ? "" : ` Spec key \`${key.name}\`.`;
  return `${keyDoc(key)} ${values}${def}${spec}${CHANGE[key.mutability]}`;
}

export const VOLUME_ATTRIBUTES: readonly VolumeAttribute[] = VOLUME_KEYS.map((key) => {
  const name = key.terraform ?? key.name;
  return { name, key, type: ctyTypeOf(key), mutability: key.mutability, description: describe(key, name) };
});

const BY_KEY = new Map(VOLUME_ATTRIBUTES.map((attr) => [attr.key.name, attr]));

/** The attribute a spec field names (canonical key, alias or field name), for the path of a diagnostic. */
export function attributeOfField(field: string | undefined): string[] | undefined {
  const key = field === undefined ? undefined : lookupKey(field);
  const attr = key && BY_KEY.get(key.name);
  return attr ? [attr.name] : undefined;
}

/** Reads a known, non-null Terraform value into the spec's value for the key; throws SpecError naming the key. */
export function toSpecValue(attr: VolumeAttribute, value: Value): unknown {
  return parseKeyValue(attr.key, value);
}

/** The Terraform value of a spec value: sizes as size strings (`20G`), lists and maps as themselves. */
export function toTerraform(attr: VolumeAttribute, value: unknown): Value {
  if (value === undefined || value === null) return null;
  const { kind } = attr.key;
  switch (kind.type) {
    case "int":
    case "bool":
      return value as number | boolean;
    case "list":
      return (value as unknown[]).map(String);
    case "map":
      return { ...(value as Record<string, string>) };
    default:
      return (kind.format as (v: unknown) => string)(value);
  }
}

/** Whether two Terraform values mean the same (`"1G"`, `1073741824` and `"1024M"` do); invalid values never do. */
export function sameValue(attr: VolumeAttribute, a: Value, b: Value): boolean {
  if (a === null || b === null) return a === b;
  try {
    return JSON.stringify(toSpecValue(attr, a)) === JSON.stringify(toSpecValue(attr, b));
  } catch {
    return false;
  }
}

/** The schema of each volume attribute: in the resource optional and computed (a spec fills them), else computed. */
export function volumeAttributeSchemas(mode: "resource" | "data"): AttributeSchema[] {
  return VOLUME_ATTRIBUTES.map((attr) => ({
    name: attr.name,
    type: attr.type,
    description: attr.description,
    ...(mode === "resource" ? { optional: true, computed: true } : { computed: true }),
  }));
}
