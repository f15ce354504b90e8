import { SpecError } from "../errors.js";

/** What placement needs to know about a node. */
export interface PlacementNode {
  id: string;
  zone: string;
  rack: string;
  /** Bytes free in the node's pools. */
  free: number;
  state: "up" | "down";
}

export interface PlacementRequest {
  /** Replicas to place. */
  count: number;
  /** Ids of nodes that already hold a replica of the volume: never chosen again, but counted for the spread. */
  existing: readonly string[];
  /** Only these nodes (`nodes=`); empty means any. */
  nodes: readonly string[];
  /** Only nodes in these zones (`zones=`); empty means any. */
  zones: readonly string[];
  /** Only nodes in these racks (`racks=`); empty means any. */
  racks: readonly string[];
}

/** The placement request for `count` more replicas of a volume whose spec says where they may go. */
export function placementFor(
  spec: Pick<PlacementRequest, "nodes" | "zones" | "racks">,
  count: number,
  existing: readonly string[] = [],
): PlacementRequest {
  return { count, existing, nodes: spec.nodes, zones: spec.zones, racks: spec.racks };
}

/**
 * Chooses nodes for `count` new replicas: up nodes that pass the spec's constraints, spread over zones first, then
 * racks, then nodes, preferring the node with the most free space among equals. Volumes are thin, so free space
 * orders the choice but does not rule a node out; a full pool shows up as a failed replica, which is dropped.
 * Refuses, with the reason, a placement that cannot be met: the spec's fault, so a SpecError on the key at fault.
 */
export function placeReplicas(
  candidates: readonly PlacementNode[],
  request: PlacementRequest,
): PlacementNode[] {
  const taken = new Set(request.existing);
  const excluded: string[] = [];
  const eligible = candidates.filter((n) => {
    if (taken.has(n.id)) return false;
    const reason =
      n.state !== "up"
        ? "down"
        : request.nodes.length > 0 && !request.nodes.includes(n.id)
          ? "not in nodes="
          : request.zones.length > 0 && !request.zones.includes(n.zone)
            ? `zone ${n.zone} not in zones=`
            : request.racks.length > 0 && !request.racks.includes(n.rack)
              ? `rack ${n.rack} not in racks=`
              : undefined;
    if (reason) excluded.push(`${n.id} (${reason})`);
    return reason === undefined;
  });
  if (eligible.length < request.count) {
    const field =
      request.nodes.length > 0
        ? "nodes"
        : request.zones.length > 0
          ? "zones"
          : request.racks.length > 0
            ? "racks"
            : "repl";
    const holders = taken.size > 0 ? `; ${[...taken].join(", ")} already hold one` : "";
    const others = excluded.length > 0 ? `; not eligible: ${excluded.join(", ")}` : "";
    throw new SpecError(
      field,
      `needs ${request.count} more node(s) for replicas but only ${eligible.length} eligible node(s) are up${holders}${others}`,
    );
  }
  const chosen = candidates.filter((n) => taken.has(n.id));
  const result: PlacementNode[] = [];
  for (let i = 0; i < request.count; i++) {
    const score = (n: PlacementNode) => [
      chosen.filter((c) => c.zone === n.zone).length,
      chosen.filter((c) => c.zone === n.zone && c.rack === n.rack).length,
      -n.free,
    ];
    const best = eligible
      .filter((n) => !result.includes(n))
      .sort((a, b) => compare(score(a), score(b)) || a.id.localeCompare(b.id))[0] as PlacementNode;
    result.push(best);
    chosen.push(best);
  }
  return result;
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++)
    if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) - (b[i] as number);
  return 0;
}
