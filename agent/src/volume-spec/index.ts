/**
 * The inline volume spec: one string (`name=pgdata,size=20G,repl=3`) or a set of fields that describes a volume,
 * in the keys Portworx users know. Everything about a key lives in one table, VOLUME_KEYS.
 */

export { changeFromFields, effectiveChange, ONLINE_KEYS, type VolumeChange } from "./change.js";
export { formatSpec } from "./format.js";
export { volumeKeysJsonSchema } from "./json-schema.js";
export type {
  FsType,
  IoPriority,
  IoProfile,
  KeyDef,
  KeyStatus,
  Mutability,
  PartialVolumeSpec,
  VolumeKey,
  VolumeSpec,
} from "./keys.js";
export { DEFAULT_BLOCK_SIZE, keyDoc, lookupKey, MAX_SIZE, VOLUME_KEYS } from "./keys.js";
export type { Kind, KindType, ScalarKind } from "./kinds.js";
export { parseKeyValue, parseSpec, specFromFields, specFromInput, withDefaults } from "./parse.js";
export { SCHEDULE_LIMITS, type SnapScheduleEntry, type Weekday } from "./schedule.js";
export { formatSize, parseSize } from "./size.js";
