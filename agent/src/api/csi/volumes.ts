import { status } from "@grpc/grpc-js";
import { NotFoundError } from "../../errors.js";
import { DEFAULT_BLOCK_SIZE, lookupKey, MAX_SIZE } from "../../volume-spec/index.js";
import type { VolumeService, VolumeView } from "../../volumes/index.js";
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

/** Why Holdfast cannot serve `capability`, or undefined when it can. */
export function capabilityProblem(capability: VolumeCapability): string | undefined {
  const mode = capability.access_mode?.mode ?? "UNKNOWN";
  if (!SINGLE_NODE.has(mode)) {
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

/** Refuses a capability Holdfast cannot serve. */
export function checkCapability(capability: VolumeCapability): void {
  const problem = capabilityProblem(capability);
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

export async function mustFindVolume(volumes: VolumeService, id: string): Promise<VolumeView> {
  const view = await findVolume(volumes, id);
  if (!view) throw new CsiError(status.NOT_FOUND, `volume ${id} does not exist`);
  return view;
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
