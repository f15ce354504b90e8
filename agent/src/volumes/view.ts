import type { ResyncProgress } from "../engine/index.js";
import { formatSpec, type PartialVolumeSpec, VOLUME_KEYS, type VolumeSpec } from "../volume-spec/index.js";
import type { AttachmentRecord, VolumeRecord } from "./records.js";

/** A volume as the API, the CLI and the provider see it. */
export interface VolumeView extends VolumeSpec {
  id: string;
  /** The canonical inline spec. */
  spec: string;
  /** `attached` while an engine serves it somewhere, else `detached`. */
  state: "attached" | "detached";
  /** Node serving the volume's I/O, or null. */
  attachedOn: string | null;
  /** Epoch of the current attachment, or null. */
  epoch: number | null;
  /** NBD URI on the attached node, or null. */
  nbd: string | null;
  /** Host block device on the attached node, or null. */
  devicePath: string | null;
  /** Mount point on the attached node, or null. */
  mountPath: string | null;
  /**
   * Where the copies are. `bytesOnDisk` is known for this node's replica; `resync` (regions done of total) while
   * a replica catches up, seen from the node where the volume is attached.
   */
  replicas: Array<{
    node: string;
    pool: string;
    state: string;
    bytesOnDisk: number | null;
    resync: { done: number; total: number } | null;
  }>;
  /** `healthy` with every replica in sync, `degraded` with fewer in sync than `repl`. */
  health: "healthy" | "degraded";
  createdAt: string;
}

/** Keys every canonical spec shows; the rest appear only when they differ from their default. */
const ALWAYS_SHOWN = new Set<keyof VolumeSpec>(["name", "size", "repl", "fs"]);

/** The canonical spec string, short: `name=pgdata,size=20G,repl=3,fs=ext4,labels=app:pg`. */
export function canonicalSpec(spec: VolumeSpec): string {
  const shown: Record<string, unknown> = {};
  for (const key of VOLUME_KEYS) {
    const value = spec[key.field];
    if (value === undefined) continue;
    if (ALWAYS_SHOWN.has(key.field) || JSON.stringify(value) !== JSON.stringify(key.default))
      shown[key.field] = value;
  }
  return formatSpec(shown as PartialVolumeSpec);
}

export function viewOf(
  record: VolumeRecord,
  attachment: AttachmentRecord | undefined,
  usage: ReadonlyMap<string, number>,
  progress?: ReadonlyMap<string, ResyncProgress>,
): VolumeView {
  const inSync = record.replicas.filter((r) => r.state === "in-sync").length;
  return {
    ...record.spec,
    id: record.id,
    spec: canonicalSpec(record.spec),
    state: attachment ? "attached" : "detached",
    attachedOn: attachment?.node ?? null,
    epoch: attachment?.epoch ?? null,
    nbd: attachment ? `nbd+unix:///${record.spec.name}?socket=${attachment.nbdSocket}` : null,
    devicePath: attachment?.devicePath ?? null,
    mountPath: attachment?.mountPath ?? null,
    replicas: record.replicas.map((r) => {
      const p = progress?.get(r.node);
      return {
        ...r,
        bytesOnDisk: usage.get(r.node) ?? null,
        resync: p ? { done: p.done, total: p.total } : null,
      };
    }),
    health: inSync >= record.spec.repl ? "healthy" : "degraded",
    createdAt: record.createdAt,
  };
}
