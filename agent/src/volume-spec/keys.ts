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
  /** Whether the value can change while the volume is in use. */
  readonly online: boolean;
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
    online: false,
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
    online: true,
    doc: "Capacity. Can grow while in use, never shrink.",
  },
  {
    name: "repl",
    field: "repl",
    aliases: ["ha_level"],
    kind: integer(z.literal([1, 2, 3], { error: "must be 1, 2 or 3" }), 1, 3),
    default: 1,
    online: true,
    doc: "Copies of the data, each on a different node.",
  },
  {
    name: "shared",
    field: "shared",
    aliases: [],
    kind: bool,
    default: false,
    online: true,
    doc: "Mountable read-write by many containers on many nodes at once.",
  },
  {
    name: "sharedv4",
    field: "sharedv4",
    aliases: [],
    kind: bool,
    default: false,
    online: true,
    doc: "Shared like `shared`, but served over NFS v4. Not together with `shared`.",
  },
  {
    name: "fs",
    field: "fs",
    aliases: [],
    kind: choice(FS_TYPES),
    default: "ext4",
    online: false,
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
    online: false,
    doc: "Block size of the device.",
  },
  {
    name: "io_profile",
    field: "ioProfile",
    aliases: [],
    kind: choice(IO_PROFILES),
    default: "auto",
    online: true,
    doc: "The access pattern to tune for; `auto` picks one from observed I/O.",
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
    online: true,
    doc: "Class of storage to place replicas on.",
  },
  {
    name: "nodes",
    field: "nodes",
    aliases: [],
    kind: places,
    default: [],
    online: false,
    doc: "Nodes (names or ids) to place replicas on.",
  },
  {
    name: "zones",
    field: "zones",
    aliases: [],
    kind: places,
    default: [],
    online: false,
    doc: "Zones to spread replicas over.",
  },
  {
    name: "racks",
    field: "racks",
    aliases: [],
    kind: places,
    default: [],
    online: false,
    doc: "Racks to spread replicas over.",
  },
  {
    name: "labels",
    field: "labels",
    aliases: [],
    kind: map(labelKey, labelValue, 'Kubernetes-style labels, key:value separated by ";"'),
    default: {},
    online: true,
    doc: "Labels for selecting and grouping volumes.",
  },
  {
    name: "scale",
    field: "scale",
    aliases: [],
    kind: integer(wholeNumber(1, 1024, "must be 1 to 1024"), 1, 1024),
    default: 1,
    online: false,
    doc: "The name stands for a set of this many volumes, one per app instance.",
  },
  {
    name: "secure",
    field: "secure",
    aliases: [],
    kind: bool,
    default: false,
    online: false,
    doc: "Encrypted at rest.",
  },
  {
    name: "snap_schedule",
    field: "snapSchedule",
    aliases: [],
    kind: snapSchedule,
    default: [],
    online: true,
    doc: 'Snapshot policies, in Portworx form with "#" for the inner comma.',
  },
  {
    name: "parent",
    field: "parent",
    aliases: [],
    kind: volumeName,
    default: undefined,
    online: false,
    doc: "Create the volume as a clone of this volume or snapshot.",
  },
];

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
