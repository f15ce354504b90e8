import { join } from "node:path";
import { z } from "zod";

/** Bytes per allocation-map bit: the unit a later copy-on-write layer copies up (as qcow2's clusters). */
export const CLUSTER_SIZE = 64 * 1024;

/** `replica.json`: what a replica is. Written once at create and rewritten on grow. */
export const ReplicaManifest = z.object({
  format: z.literal(1),
  volumeId: z.string().min(1),
  size: z.number().int().positive(),
  blockSize: z.number().int().positive(),
  /** Layers from the oldest to the writable top; snapshots will freeze the top and add a new one. */
  layers: z.array(z.string().regex(/^\d{6}$/)).min(1),
  createdAt: z.string(),
});
export type ReplicaManifest = z.infer<typeof ReplicaManifest>;

/** Where each part of a replica lives inside its directory. */
export const replicaPaths = (dir: string) => ({
  manifest: join(dir, "replica.json"),
  epoch: join(dir, "epoch"),
  activityLog: join(dir, "activity.map"),
  layerDir: (layer: string) => join(dir, "layers", layer),
  layerData: (layer: string) => join(dir, "layers", layer, "data"),
  layerMap: (layer: string) => join(dir, "layers", layer, "alloc.map"),
});
