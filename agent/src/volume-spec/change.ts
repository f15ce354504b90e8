import { isDeepStrictEqual } from "node:util";
import { ConflictError, SpecError } from "../errors.js";
import { VOLUME_KEYS, type VolumeSpec } from "./keys.js";
import { specFromFields } from "./parse.js";

/** What may be asked of an existing volume: any key but its name, each checked against its row's mutability. */
export type VolumeChange = Partial<Omit<VolumeSpec, "name">>;

/** The keys that change in place, for the update schemas, the CLI's `update` flags and the docs. */
export const ONLINE_KEYS = VOLUME_KEYS.filter((key) => key.mutability === "online");

/**
 * Reads an update's fields (REST body, CLI flags) through the key table, as a create's are: the same names,
 * aliases, grammar and planned-key refusals. `name` is the volume being changed, so it is refused here.
 */
export function changeFromFields(fields: Record<string, unknown>): VolumeChange {
  const { name, ...change } = specFromFields(fields);
  if (name !== undefined) throw new SpecError("name", "cannot change: it is how the volume is found");
  if (Object.keys(change).length === 0) {
    throw new SpecError(
      undefined,
      `give at least one key to change (${ONLINE_KEYS.map((k) => k.name).join(", ")})`,
    );
  }
  return change;
}

/**
 * The part of `asked` that differs from the volume as it is. A key that is not `online` may be given with its
 * current value (a re-sent declaration changes nothing), but a different value is refused, saying why.
 */
export function effectiveChange(current: VolumeSpec, asked: VolumeChange): VolumeChange {
  const effective: Record<string, unknown> = {};
  for (const key of VOLUME_KEYS) {
    const value = asked[key.field as keyof VolumeChange];
    if (value === undefined || isDeepStrictEqual(value, current[key.field])) continue;
    if (key.mutability === "replace") {
      throw new ConflictError(
        "volume.key_immutable",
        `${key.name}: cannot change on an existing volume; it takes a new volume (Terraform plans a replacement)`,
        key.name,
      );
    }
    if (key.mutability === "fixed") {
      throw new ConflictError(
        "volume.key_immutable",
        `${key.name}: cannot change once the volume exists, not even by replacement`,
        key.name,
      );
    }
    effective[key.field] = value;
  }
  return effective as VolumeChange;
}
