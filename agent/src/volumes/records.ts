import type { VolumeSpec } from "../spec/index.js";

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
  };
}
export type StoreKeys = ReturnType<typeof storeKeys>;
