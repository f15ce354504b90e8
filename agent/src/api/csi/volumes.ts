import { status } from "@grpc/grpc-js";
import { NotFoundError, SpecError } from "../../errors.js";
import { DEFAULT_BLOCK_SIZE, lookupKey, MAX_SIZE } from "../../volume-spec/index.js";
import type { VolumeService, VolumeSetView, VolumeView } from "../../volumes/index.js";
import type { CapacityRange, CsiVolume, VolumeCapability } from "./messages.js";
import { CsiError } from "./status.js";

/** The topology key CSI volumes and nodes are labelled with: the node's zone (`--zone`). */
export const ZONE_KEY = "topology.holdfast.io/zone";

/** Access modes of a volume that one node at a time uses; `shared` volumes (many nodes) are not built yet. */
const SINGLE_NODE = new Set([
  "SINGLE_NODE_WRITER",
  "SINGLE_NODE_READER_ONLY",
  "SINGLE_NODE_SINGLE_WRITER",
  "SINGLE_NODE_MULTI_WRITER",
]);

/** A set (`scale` > 1) is used by many nodes at once, each writing its own member. */
const SET_MODES = new Set([...SINGLE_NODE, "MULTI_NODE_MULTI_WRITER"]);

/** CSI volume ids of sets are `set:NAME`: no volume name or id holds a colon, so the two never meet. */
const SET_ID_PREFIX = "set:";

/** The CSI volume id of the set called `name`. */
export function setVolumeId(name: string): string {
  return `${SET_ID_PREFIX}${name}`;
}

/** The set a CSI volume id names, or undefined when it names one volume. */
export function setNameOf(id: string): string | undefined {
  return id.startsWith(SET_ID_PREFIX) ? id.slice(SET_ID_PREFIX.length) : undefined;
}

/** Why Holdfast cannot serve `capability` (for a set when `set`), or undefined when it can. */
export function capabilityProblem(capability: VolumeCapability, set = false): string | undefined {
  const mode = capability.access_mode?.mode ?? "UNKNOWN";
  if (set && !SET_MODES.has(mode)) {
    return `access mode ${mode} is not supported for a volume set: each node writes its own member (SINGLE_NODE_* or MULTI_NODE_MULTI_WRITER)`;
  }
  if (!set && !SINGLE_NODE.has(mode)) {
    return `access mode ${mode} is not supported: volumes are used by one node at a time (SINGLE_NODE_*)`;
  }
  if (capability.access_type !== "mount" || !capability.mount) {
    return "only mount access is supported, not raw block";
  }
  if (capability.mount.mount_flags.length > 0) {
    return `mount_flags are not supported (got ${capability.mount.mount_flags.join(",")})`;
  }
  return undefined;
}

/** Refuses a capability Holdfast cannot serve (for a set when `set`). */
export function checkCapability(capability: VolumeCapability, set = false): void {
  const problem = capabilityProblem(capability, set);
  if (problem) throw new CsiError(status.INVALID_ARGUMENT, `volume_capability: ${problem}`);
}

/**
 * The size a capacity range asks for, in bytes: required_bytes rounded up to whole blocks, or the spec's default
 * size when only a limit (or nothing) is given; a range nothing fits is OUT_OF_RANGE.
 */
export function sizeFor(range: CapacityRange | null, blockSize = DEFAULT_BLOCK_SIZE): number {
  const required = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  if (required < 0 || limit < 0) {
    throw new CsiError(status.OUT_OF_RANGE, "capacity_range: bytes cannot be negative");
  }
  const fallback = lookupKey("size")?.default as number;
  const size =
    required > 0
      ? Math.ceil(required / blockSize) * blockSize
      : limit > 0
        ? Math.min(fallback, limit - (limit % blockSize))
        : fallback;
  if (size === 0 || (limit > 0 && size > limit)) {
    throw new CsiError(
      status.OUT_OF_RANGE,
      `capacity_range: no whole number of ${blockSize}-byte blocks lies between ${required} and ${limit} bytes`,
    );
  }
  if (size > MAX_SIZE) {
    throw new CsiError(status.OUT_OF_RANGE, `capacity_range: at most ${MAX_SIZE} bytes, not ${size}`);
  }
  return size;
}

/** The volume whose `by` (CSI's volume_id is Holdfast's volume id; its name is the volume's name) is `key`. */
export async function findVolume(
  volumes: VolumeService,
  key: string,
  by: "id" | "name" = "id",
): Promise<VolumeView | undefined> {
  try {
    const view = await volumes.inspect(key);
    return view[by] === key ? view : undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** The set whose CSI volume id is `id`, or undefined when it has no members. */
export async function findSet(volumes: VolumeService, id: string): Promise<VolumeSetView | undefined> {
  const name = setNameOf(id);
  if (name === undefined) return undefined;
  try {
    return await volumes.inspectSet(name);
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof SpecError) return undefined;
    throw err;
  }
}

export async function mustFindSet(volumes: VolumeService, id: string): Promise<VolumeSetView> {
  const set = await findSet(volumes, id);
  if (!set) throw new CsiError(status.NOT_FOUND, `volume set ${id} does not exist`);
  return set;
}

export async function mustFindVolume(volumes: VolumeService, id: string): Promise<VolumeView> {
  const view = await findVolume(volumes, id);
  if (!view) throw new CsiError(status.NOT_FOUND, `volume ${id} does not exist`);
  return view;
}

/**
 * A set in CSI's terms: one CSI volume whose capacity is a member's; the nodes that stage it each get a member
 * of their own. Its topology is every zone that holds a replica of a member.
 */
export function csiSet(set: VolumeSetView, zoneOf: (node: string) => string | undefined): CsiVolume {
  const [first] = set.members;
  const replicas = set.members.flatMap((m) => m.replicas);
  const zones = [...new Set(replicas.map((r) => zoneOf(r.node)).filter((z) => z !== undefined))];
  return {
    volume_id: setVolumeId(set.name),
    capacity_bytes: first?.size ?? 0,
    volume_context: {
      name: set.name,
      scale: String(set.scale),
      members: set.members.map((m) => m.name).join(","),
    },
    accessible_topology: zones.map((zone) => ({ segments: { [ZONE_KEY]: zone } })),
  };
}

/** A volume in CSI's terms; its topology is the zones that hold its replicas. */
export function csiVolume(view: VolumeView, zoneOf: (node: string) => string | undefined): CsiVolume {
  const zones = [...new Set(view.replicas.map((r) => zoneOf(r.node)).filter((z) => z !== undefined))];
  return {
    volume_id: view.id,
    capacity_bytes: view.size,
    volume_context: { name: view.name, spec: view.spec },
    accessible_topology: zones.map((zone) => ({ segments: { [ZONE_KEY]: zone } })),
  };
}
