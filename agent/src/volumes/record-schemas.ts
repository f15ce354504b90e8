import { z } from "zod";
import { Name } from "../config/index.js";
import { VolumeId } from "../contracts/index.js";
import { SpecError } from "../errors.js";
import { specFromFields, type VolumeSpec, withDefaults } from "../volume-spec/index.js";
import type {
  AttachmentRecord,
  ClusterRecord,
  QuarantineRecord,
  ReplicaRecord,
  TombstoneRecord,
  VolumeRecord,
} from "./records.js";

/**
 * What each volume record read from the store must be before anything acts on it (meta/records.ts reads them):
 * specs go through the key table, as API input does; ids and node names have the shapes they have at creation.
 */

const Timestamp = z.string().min(1).max(64);
const Path = z.string().max(4096);

const StoredSpec = z.record(z.string(), z.unknown()).transform((fields, ctx): VolumeSpec => {
  try {
    const partial = specFromFields(fields);
    if (partial.name === undefined) throw new SpecError("name", "is missing");
    return withDefaults({ ...partial, name: partial.name });
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const ReplicaRecordSchema: z.ZodType<ReplicaRecord> = z.object({
  node: Name,
  pool: Path.min(1),
  state: z.enum(["in-sync", "resyncing", "down"]),
});

export const VolumeRecordSchema: z.ZodType<VolumeRecord, unknown> = z.object({
  id: VolumeId,
  spec: StoredSpec,
  replicas: z.array(ReplicaRecordSchema).max(16),
  createdAt: Timestamp,
});

export const AttachmentRecordSchema: z.ZodType<AttachmentRecord, unknown> = z.object({
  node: Name,
  epoch: z.number().int().positive(),
  nbdSocket: Path,
  devicePath: Path.optional(),
  mountPath: Path.optional(),
  since: Timestamp,
});

export const TombstoneRecordSchema: z.ZodType<TombstoneRecord, unknown> = z.object({
  id: VolumeId,
  name: z.string().max(255),
  reason: z.enum(["deleted", "removed"]),
  nodes: z.array(Name),
  since: Timestamp,
});

export const QuarantineRecordSchema: z.ZodType<QuarantineRecord, unknown> = z.object({
  node: Name,
  volumeId: VolumeId,
  pool: Path,
  since: Timestamp,
  bytes: z.number().int().nonnegative().nullable(),
});

export const ClusterRecordSchema: z.ZodType<ClusterRecord, unknown> = z.object({
  uuid: z.uuid(),
  createdAt: Timestamp,
});
