import { z } from "zod";
import { decodeInt, type Kind, list, map, type ScalarKind, scalar, wholeNumber } from "./kinds.js";
import { labelKey, labelValue, placeName, volumeName } from "./names.js";
import { type SnapScheduleEntry, snapSchedule } from "./schedule.js";
import { formatSize, parseSize } from "./size.js";

const FS_TYPES = ["ext4", "xfs", "none"] as const;
const IO_PROFILES = ["sequential", "random", "db", "db_remote", "cms", "auto", "none"] as const;
const IO_PRIORITIES = ["high", "medium", "low"] as const;
export type FsType = (typeof FS_TYPES)[number];
export type IoProfile = (typeof IO_PROFILES)[number];
export type IoPriority = (typeof IO_PRIORITIES)[number];

/** A volume as fully specified: every key of the table, defaults filled in. See VOLUME_KEYS for each field. */
export interface VolumeSpec {
  name: string;
  /** Bytes. */
  size: number;
  repl: 1 | 2 | 3;
  shared: boolean;
  sharedv4: boolean;
  fs: FsType;
  /** Bytes. */
  blockSize: number;
  ioProfile: IoProfile;
  ioPriority: IoPriority;
  nodes: string[];
  zones: string[];
  racks: string[];
  labels: Record<string, string>;
  scale: number;
  secure: boolean;
  snapSchedule: SnapScheduleEntry[];
  parent: string | undefined;
}

/** What the user actually gave: only name is sure to be there. */
export type PartialVolumeSpec = Partial<VolumeSpec> & { name: string };

/**
 * Whether a key does what its doc says: `supported`, or planned with the issue it waits for. A planned key keeps
 * its syntax (so the docs can show it) but any value other than its default is refused, naming the issue: a key
 * that parsed and did nothing would, for `secure=true`, make a plaintext volume the user believes encrypted.
 */
export type KeyStatus = "supported" | { readonly planned: string };

/**
 * How a key may change on an existing volume. `online`: in place while in use (the API's PATCH, `volume update`,
 * an in-place Terraform apply). `replace`: only by making a new volume (Terraform plans a replacement; the API
 * refuses a change). `fixed`: never, not even by replacement, which would destroy more than the one volume the
 * user sees (see the row).
 */
export type Mutability = "online" | "replace" | "fixed";

/** One key of the spec, everything about it in one place. */
export interface KeyDef<F extends keyof VolumeSpec> {
  /** The canonical key name: what formatSpec writes and what errors name. */
  readonly name: string;
  /** The VolumeSpec field; also accepted as a key, as JSON bodies and CLI flags spell it. */
  readonly field: F;
  /** Other names accepted for the key, mostly Portworx's. */
  readonly aliases: readonly string[];
  readonly kind: Kind<VolumeSpec[F]>;
  /** The value when the key is not given; undefined for name (required) and parent (none). */
  readonly default: VolumeSpec[F] | undefined;
  readonly status: KeyStatus;
  readonly mutability: Mutability;
  /** The Terraform attribute (and construct prop) name. @default - the canonical name */
  readonly terraform?: string;
  /** One line for the docs and help text. */
  readonly doc: string;
}

/** Any row of the table, typed so that each row's kind and default match its field. */
export type VolumeKey = { [F in keyof VolumeSpec]: KeyDef<F> }[keyof VolumeSpec];

export const DEFAULT_BLOCK_SIZE = 4096;
export const MAX_SIZE = 64 * 2 ** 40;

/** Words for a choice: `a, b or c`. */
const oneOf = (values: readonly string[]) => `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`;

/** A whole number written in digits; `schema` holds the range (and, for repl, the exact type). */
function integer<T extends number>(
  schema: z.ZodType<T>,
  min: number,
  max: number,
  summary = `${min} to ${max}`,
) {
  return scalar({ type: "int", summary, min, max, schema, decode: decodeInt });
}

const TRUE = new Set(["true", "yes", "on", "1"]);
const FALSE = new Set(["false", "no", "off", "0"]);

const bool = scalar({
  type: "bool",
  summary: "true or false (also yes/no, on/off, 1/0)",
  schema: z.boolean({ error: "must be true or false (or yes/no, on/off, 1/0)" }),
  decode: (text) => {
    const word = text.toLowerCase();
    if (TRUE.has(word)) return true;
    if (FALSE.has(word)) return false;
    return text;
  },
});

/** A choice of words, matched in any case; `aliases` maps other spellings (Portworx's `cos=3`) onto them. */
function choice<const T extends readonly [string, ...string[]]>(
  values: T,
  aliases: readonly (readonly [string, T[number]])[] = [],
): ScalarKind<T[number]> {
  const others = new Map(aliases);
  const also = others.size > 0 ? ` (or ${[...others.keys()].join(", ")})` : "";
  return scalar({
    type: "enum",
    summary: `${values.join(", ")}${also}`,
    values,
    schema: z.enum(values, { error: `must be ${oneOf(values)}${also}` }),
    decode: (text) => others.get(text.toLowerCase()) ?? text.toLowerCase(),
  });
}

const places = list(placeName, { summary: 'names separated by ";"' });

/**
 * THE table of spec keys, in the order formatSpec writes them. The parser, formatter and docs are derived from
 * it, as are later the REST API's schema, the CLI's options and the Terraform attributes: adding a key is one
 * row here.
 */
export const VOLUME_KEYS: readonly VolumeKey[] = [
  {
    name: "name",
    field: "name",
    aliases: [],
    kind: volumeName,
    default: undefined,
    status: "supported",
    mutability: "replace",
    doc: 'Required. A spec with no "=" at all is taken as a bare name.',
  },
  {
    name: "size",
    field: "size",
    aliases: [],
    kind: scalar({
      type: "size",
      summary:
        "size such as 20G (binary units; a bare number is GiB), a multiple of the block size, at most 64T",
      min: 1,
      max: MAX_SIZE,
      schema: z
        .number({ error: 'must be a size such as "20G" or a number of bytes' })
        .min(1, { error: "must be more than 0" })
        .max(MAX_SIZE, { error: `must be at most ${formatSize(MAX_SIZE)}` })
        .int({ error: "must be a whole number of bytes" }),
      decode: parseSize,
      format: formatSize,
    }),
    default: 2 ** 30,
    status: "supported",
    mutability: "online",
    doc: "Capacity. Can grow while in use, never shrink.",
  },
  {
    name: "repl",
    field: "repl",
    aliases: ["ha_level"],
    kind: integer(z.literal([1, 2, 3], { error: "must be 1, 2 or 3" }), 1, 3),
    default: 1,
    status: "supported",
    mutability: "online",
    terraform: "replicas",
    doc: "Copies of the data, each on a different node.",
  },
  {
    name: "shared",
    field: "shared",
    aliases: [],
    kind: bool,
    default: false,
    status: { planned: "issue 14 (shared volumes)" },
    mutability: "online",
    doc: "Mountable read-write by many containers on many nodes at once.",
  },
  {
    name: "sharedv4",
    field: "sharedv4",
    aliases: [],
    kind: bool,
    default: false,
    status: { planned: "issue 14 (shared volumes)" },
    mutability: "online",
    doc: "Shared like `shared`, but served over NFS v4. Not together with `shared`.",
  },
  {
    name: "fs",
    field: "fs",
    aliases: [],
    kind: choice(FS_TYPES),
    default: "ext4",
    status: "supported",
    mutability: "replace",
    terraform: "filesystem",
    doc: "Filesystem made on the volume; `none` leaves a raw block device.",
  },
  {
    name: "block_size",
    field: "blockSize",
    aliases: ["bs"],
    kind: integer(
      wholeNumber(512, 65536, "must be a power of two from 512 to 65536", (n) => (n & (n - 1)) === 0),
      512,
      65536,
      "bytes, a power of two from 512 to 65536",
    ),
    default: DEFAULT_BLOCK_SIZE,
    status: "supported",
    mutability: "replace",
    doc: "Block size of the device.",
  },
  {
    name: "io_profile",
    field: "ioProfile",
    aliases: [],
    kind: choice(IO_PROFILES),
    default: "auto",
    status: "supported",
    mutability: "online",
    doc: "The access pattern to tune for: `sequential` reads ahead; `db`, `db_remote`, `cms` and `auto` coalesce concurrent flushes; `random` and `none` do neither (docs/decisions/0011-io-tuning.md).",
  },
  {
    name: "io_priority",
    field: "ioPriority",
    aliases: ["priority_io", "cos"],
    kind: choice(IO_PRIORITIES, [
      ["3", "high"],
      ["2", "medium"],
      ["1", "low"],
    ]),
    default: "medium",
    status: "supported",
    mutability: "online",
    doc: "The volume's share of its node's I/O when volumes contend for it: high 4, medium 2, low 1 (weighted fair queuing).",
  },
  {
    name: "nodes",
    field: "nodes",
    aliases: [],
    kind: places,
    default: [],
    status: "supported",
    mutability: "replace",
    doc: "Nodes (names or ids) to place replicas on.",
  },
  {
    name: "zones",
    field: "zones",
    aliases: [],
    kind: places,
    default: [],
    status: "supported",
    mutability: "replace",
    doc: "Zones to spread replicas over.",
  },
  {
    name: "racks",
    field: "racks",
    aliases: [],
    kind: places,
    default: [],
    status: "supported",
    mutability: "replace",
    doc: "Racks to spread replicas over.",
  },
  {
    name: "labels",
    field: "labels",
    aliases: [],
    kind: map(labelKey, labelValue, 'Kubernetes-style labels, key:value separated by ";"'),
    default: {},
    status: "supported",
    mutability: "online",
    doc: "Labels for selecting and grouping volumes.",
  },
  {
    name: "scale",
    field: "scale",
    aliases: [],
    kind: integer(wholeNumber(1, 1024, "must be 1 to 1024"), 1, 1024),
    default: 1,
    status: "supported",
    mutability: "fixed",
    doc: "The name stands for a set of this many volumes, NAME.1 to NAME.N, one per app instance. Fixed: replacing the set would destroy every member.",
  },
  {
    name: "secure",
    field: "secure",
    aliases: [],
    kind: bool,
    default: false,
    status: { planned: "encryption at rest (no issue filed yet)" },
    mutability: "replace",
    doc: "Encrypted at rest.",
  },
  {
    name: "snap_schedule",
    field: "snapSchedule",
    aliases: [],
    kind: snapSchedule,
    default: [],
    status: { planned: "issue 15 (snapshots and backups)" },
    mutability: "online",
    doc: 'Snapshot policies, in Portworx form with "#" for the inner comma.',
  },
  {
    name: "parent",
    field: "parent",
    aliases: [],
    kind: volumeName,
    default: undefined,
    status: { planned: "issue 15 (snapshots and clones)" },
    mutability: "replace",
    doc: "Create the volume as a clone of this volume or snapshot.",
  },
];

/** A key's doc line, saying so when it is not built yet: what the docs, the OpenAPI document and Terraform show. */
export function keyDoc(key: VolumeKey): string {
  if (key.status === "supported") return key.doc;
  return `Not built yet (waits for ${key.status.planned}): only the default is accepted. ${key.doc}`;
}

/** Every accepted spelling, lower-cased: canonical key, aliases and field name. */
const BY_NAME = new Map(
  VOLUME_KEYS.flatMap((def) =>
    [def.name, ...def.aliases, def.field].map((name) => [name.toLowerCase(), def] as const),
  ),
);

/** The table row a key names, in any case and under any of its names; whole names only. */
export function lookupKey(name: string): VolumeKey | undefined {
  return BY_NAME.get(name.toLowerCase());
}
