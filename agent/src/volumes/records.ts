import type { VolumeSpec } from "../volume-spec/index.js";

/** Where a replica of a volume lives and whether it holds every acknowledged write. */
export interface ReplicaRecord {
  /** Node that holds the replica. */
  node: string;
  /** Storage pool directory on that node. */
  pool: string;
  /** `in-sync` holds every acknowledged write; `resyncing` is catching up; `down` is unreachable. */
  state: "in-sync" | "resyncing" | "down";
}

/** A volume as the metadata store holds it. */
export interface VolumeRecord {
  id: string;
  spec: VolumeSpec;
  replicas: ReplicaRecord[];
  createdAt: string;
}

/** Who serves a volume's I/O now. Exactly one per volume, guarded by the epoch. */
export interface AttachmentRecord {
  node: string;
  epoch: number;
  /** NBD unix socket on the attached node. */
  nbdSocket: string;
  /** Block device path on the attached node, once exposed (`/dev/loopN`). */
  devicePath?: string;
  /** File system mount point, once mounted. */
  mountPath?: string;
  since: string;
}

/**
 * A recorded removal: nodes whose replica of volume `id` is to be destroyed, because the volume was deleted or the
 * replica was dropped from its list on purpose (replication lowered, rebuilt elsewhere). A node destroys only what
 * a tombstone names, then takes itself off; the tombstone goes when no node is left on it.
 */
export interface TombstoneRecord {
  id: string;
  /** The volume's name, for people. */
  name: string;
  /** `deleted`: the volume is gone; `removed`: these nodes' replicas left a volume that lives on. */
  reason: "deleted" | "removed";
  nodes: string[];
  since: string;
}

/** A replica that no record listed when its node started: kept, reported, destroyed only by purge or its TTL. */
export interface QuarantineRecord {
  node: string;
  volumeId: string;
  pool: string;
  since: string;
  /** Bytes its files take, when known. */
  bytes: number | null;
}

/** The cluster's identity in the store, written by the first agent that starts: data dirs record its uuid. */
export interface ClusterRecord {
  uuid: string;
  createdAt: string;
}

/** The key layout under one cluster's prefix. */
export function storeKeys(cluster: string) {
  const root = `/holdfast/${cluster}`;
  return {
    /** Everything of this cluster lives under it (membership adds `nodes/` and `alive/`). */
    root,
    volumes: `${root}/volumes/`,
    volume: (id: string) => `${root}/volumes/${id}`,
    name: (name: string) => `${root}/names/${name}`,
    attachments: `${root}/attachments/`,
    attachment: (id: string) => `${root}/attachments/${id}`,
    epoch: (id: string) => `${root}/epochs/${id}`,
    cluster: `${root}/cluster`,
    tombstones: `${root}/tombstones/`,
    tombstone: (id: string) => `${root}/tombstones/${id}`,
    quarantine: `${root}/quarantine/`,
    quarantined: (node: string, id: string) => `${root}/quarantine/${node}/${id}`,
  };
}
export type StoreKeys = ReturnType<typeof storeKeys>;
