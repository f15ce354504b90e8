import { ConflictError } from "../errors.js";
import type { PartialVolumeSpec } from "../volume-spec/index.js";
import type { VolumeService } from "./service.js";
import type { VolumeView } from "./view.js";
import { memberSpec, membersOf } from "./volume-set.js";

/** A set as a caller names it: its name, its scale, and the keys its members are made with. */
export interface SetTarget {
  /** The set's name, without a member's `.N`. */
  name: string;
  /** How many members the set has. */
  scale: number;
  /** The keys a missing member is made again with. */
  asked: PartialVolumeSpec;
}

/** How a caller of {@link mountFreeMember} takes a member. */
export interface MemberClaim {
  /** This node: members with a replica here are tried first. */
  nodeId: string;
  /** Whether the caller holds `member` already; such a member is mounted again instead of taking another. */
  held: (member: VolumeView) => boolean;
  /** Mounts the chosen member where the caller wants it. */
  mount: (name: string) => Promise<VolumeView>;
}

/**
 * Mounts a member of `set` for a new user of it, the same way for every front end (Docker's Mount per container,
 * CSI's NodeStageVolume per node): the member the caller holds already; else a detached one, those with a replica on
 * this node first; else one attached on another node (the volume service takes it over when that node is down, and
 * refuses when it is alive); else a member deleted since the set was made, made again. All taken: `volume.set_full`.
 */
export async function mountFreeMember(
  volumes: VolumeService,
  set: SetTarget,
  claim: MemberClaim,
): Promise<VolumeView> {
  const members = membersOf(await volumes.list(), set.name, set.scale);
  const held = members.find(claim.held);
  if (held) return claim.mount(held.name);

  const hasReplicaHere = (v: VolumeView) => v.replicas.some((r) => r.node === claim.nodeId);
  const localFirst = (a: VolumeView, b: VolumeView) =>
    Number(!hasReplicaHere(a)) - Number(!hasReplicaHere(b));
  const detached = members.filter((m) => m.attachedOn === null).sort(localFirst);
  const elsewhere = members.filter((m) => m.attachedOn !== null && m.attachedOn !== claim.nodeId);
  const taken = new Set(members.map((m) => m.name));
  const missing = Array.from({ length: set.scale }, (_, i) =>
    memberSpec({ ...set.asked, scale: set.scale }, i + 1),
  ).filter((spec) => !taken.has(spec.name));
  for (const m of [...detached, ...elsewhere]) {
    try {
      return await claim.mount(m.name);
    } catch (err) {
      // Taken meanwhile, or attached on a node that is alive: try the next one.
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  for (const spec of missing) {
    try {
      await volumes.create(spec);
      return await claim.mount(spec.name);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  const now = membersOf(await volumes.list(), set.name, set.scale);
  throw new ConflictError(
    "volume.set_full",
    `all ${set.scale} volumes of "${set.name}" (scale=${set.scale}) are in use: ${describeMembers(now)}`,
    "scale",
  );
}

/** `cache.1 on node1, cache.2 free`, for messages. */
export function describeMembers(views: VolumeView[]): string {
  return views.map((v) => `${v.name} ${v.attachedOn ? `on ${v.attachedOn}` : "free"}`).join(", ");
}
