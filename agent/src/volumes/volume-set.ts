import { SpecError } from "../errors.js";
import type { PartialVolumeSpec } from "../volume-spec/index.js";
import type { VolumeView } from "./view.js";

/** Longest volume name (volume-spec/names.ts): a set's member names must fit in it too. */
const MAX_NAME = 63;

/**
 * A name with `scale=N` (N > 1) stands for a set of N volumes, `NAME.1` to `NAME.N`, one per app instance: what
 * Portworx users get from Docker and Marathon. Each member is an ordinary volume whose own spec keeps `scale=N`,
 * which is how a set is known again from its members.
 */
export interface VolumeSetView {
  /** The set's name: what the user wrote, without a member's `.N`. */
  name: string;
  scale: number;
  /** The members, by index; fewer than `scale` only when some were deleted one by one. */
  members: VolumeView[];
}

/** Member `index` (1-based) of the set called `base`: `cache.1`, `cache.2`, ... */
export function memberName(base: string, index: number): string {
  return `${base}.${index}`;
}

/** The index of `name` in the set called `base` of `scale` members, or undefined when it is not one of them. */
export function memberIndex(base: string, scale: number, name: string): number | undefined {
  if (!name.startsWith(`${base}.`)) return undefined;
  const index = Number(name.slice(base.length + 1));
  return Number.isInteger(index) && index >= 1 && index <= scale && name === memberName(base, index)
    ? index
    : undefined;
}

/** Refuses a set whose member names would not be volume names. */
export function checkSetName(spec: PartialVolumeSpec): void {
  const scale = spec.scale ?? 1;
  if (scale > 1 && memberName(spec.name, scale).length > MAX_NAME) {
    throw new SpecError(
      "name",
      `too long for scale=${scale}: member names such as "${memberName(spec.name, scale)}" must fit in ${MAX_NAME} characters`,
    );
  }
}

/** Member `index`'s spec: the set's, under the member's name, keeping `scale`. */
export function memberSpec(set: PartialVolumeSpec & { scale: number }, index: number): PartialVolumeSpec {
  return { ...set, name: memberName(set.name, index) };
}

/** The members of the set `base` of `scale` among `volumes`, by index. */
export function membersOf(volumes: VolumeView[], base: string, scale: number): VolumeView[] {
  const index = (v: VolumeView) => memberIndex(base, scale, v.name) ?? 0;
  return volumes.filter((v) => index(v) > 0 && v.scale === scale).sort((a, b) => index(a) - index(b));
}
