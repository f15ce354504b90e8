import type { KeyDef, PartialVolumeSpec, VolumeSpec } from "./keys.js";
import { VOLUME_KEYS } from "./keys.js";

/** `key=value` for one field, or nothing when the field is absent. */
function formatField<F extends keyof VolumeSpec>(def: KeyDef<F>, spec: Partial<VolumeSpec>): string[] {
  const value = spec[def.field];
  return value === undefined ? [] : [`${def.name}=${def.kind.format(value)}`];
}

/**
 * The canonical spec string: canonical key names in the table's order, every field that is present, sizes in
 * their largest exact unit, labels sorted. parseSpec reads it back to the same value, so it is what logs, views
 * and comparisons use.
 */
export function formatSpec(spec: VolumeSpec | PartialVolumeSpec): string {
  return VOLUME_KEYS.flatMap((def) => formatField(def, spec)).join(",");
}
