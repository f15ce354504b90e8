import { isDeepStrictEqual } from "node:util";
import { SpecError } from "../errors.js";
import {
  DEFAULT_BLOCK_SIZE,
  lookupKey,
  type PartialVolumeSpec,
  VOLUME_KEYS,
  type VolumeKey,
  type VolumeSpec,
} from "./keys.js";
import { isCollection } from "./kinds.js";
import { show } from "./show.js";

const KNOWN = VOLUME_KEYS.map((def) => def.name).join(", ");

/**
 * Reads `[key, value]` pairs through the key table. Spec strings and field objects both come through here, so
 * they accept the same keys and aliases and fail with the same messages.
 */
function readPairs(pairs: Iterable<readonly [string, unknown]>): Partial<VolumeSpec> {
  const spec: Record<string, unknown> = {};
  const spelledAs = new Map<string, string>();
  const given = new Map<string, unknown>();
  for (const [name, value] of pairs) {
    const def = lookupKey(name);
    if (!def) throw new SpecError(name, `unknown key (known keys: ${KNOWN})`);
    const earlier = spelledAs.get(def.name);
    if (earlier !== undefined) {
      const same = earlier.toLowerCase() === name.toLowerCase();
      throw new SpecError(
        def.name,
        same ? "given twice" : `given twice (${show(earlier)} and ${show(name)})`,
      );
    }
    if (value === "" && !isCollection(def.kind)) throw new SpecError(def.name, "needs a value");
    spelledAs.set(def.name, name);
    given.set(def.name, value);
    spec[def.field] = parseKeyValue(def, value);
  }
  checkTogether(spec as Partial<VolumeSpec>, given);
  return spec as Partial<VolumeSpec>;
}

/**
 * One key's value, read by its kind. A planned key's default is what every volume does, so it is accepted; any
 * other value is refused, since nothing would act on it.
 */
export function parseKeyValue<K extends VolumeKey>(def: K, value: unknown): VolumeSpec[K["field"]] {
  const parsed = def.kind.parse(value, def.name) as VolumeSpec[K["field"]];
  if (def.status === "supported" || isDeepStrictEqual(parsed, def.default)) return parsed;
  const only =
    def.default === undefined
      ? ""
      : `; only ${def.kind.format(def.default as never) || "an empty value"}, the default, is accepted`;
  throw new SpecError(def.name, `is not built yet: it waits for ${def.status.planned}${only}`);
}

/**
 * Rules between keys, checked once every key is read; a key not given counts with its default. `given` holds
 * the values as the user wrote them, for the message.
 */
function checkTogether(spec: Partial<VolumeSpec>, given: Map<string, unknown> = new Map()): void {
  const blockSize = spec.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (spec.size !== undefined && spec.size % blockSize !== 0) {
    const size = show(given.get("size") ?? spec.size);
    throw new SpecError("size", `must be a multiple of the block size (${blockSize}), not ${size}`);
  }
}

/** The pairs of a spec string: `,` between pairs, the first `=` between key and value. */
function* splitPairs(input: string): Generator<readonly [string, string]> {
  for (const pair of input.split(",")) {
    if (pair === "") {
      throw new SpecError(undefined, `empty pair in ${show(input)} (a doubled ",", or one at either end)`);
    }
    const eq = pair.indexOf("=");
    if (eq === -1) {
      throw new SpecError(lookupKey(pair)?.name ?? pair, `expected key=value, not ${show(pair)}`);
    }
    if (eq === 0) throw new SpecError(undefined, `no key before "=" in ${show(pair)}`);
    yield [pair.slice(0, eq), pair.slice(eq + 1)];
  }
}

/**
 * Parses an inline spec (`name=pgdata,size=20G,repl=3`) or, when there is no `=` at all, a plain volume name, as
 * Portworx reads Docker volume names. Only the keys given are in the result, so a caller can tell what the user
 * asked for from what defaults would fill in (withDefaults).
 */
export function parseSpec(input: string): PartialVolumeSpec {
  const spec = readPairs(input.includes("=") ? splitPairs(input) : [["name", input]]);
  const { name } = spec;
  if (name === undefined) {
    throw new SpecError("name", `is missing from ${show(input)} (a spec of key=value pairs needs name=...)`);
  }
  return { ...spec, name };
}

/**
 * Reads the same keys given as an object (Docker's volume options, a REST body, CLI flags). Values may be spec
 * strings, or JSON values of the right type: a number for size is bytes, an array for a list, an object for
 * labels. Undefined values count as not given. The name is optional here, for callers that take it elsewhere.
 */
export function specFromFields(
  fields: Record<string, unknown>,
): Omit<PartialVolumeSpec, "name"> & { name?: string } {
  return readPairs(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/**
 * A volume from an inline spec, separate keys, or both: the API's create body, the CLI's argument and flags, read
 * the same way in both places so that the CLI refuses what the agent would. A key given both ways is ambiguous, so
 * it is refused; without a spec, `name` must be among the keys.
 */
export function specFromInput(spec: string | undefined, fields: Record<string, unknown>): PartialVolumeSpec {
  const fromFields = specFromFields(fields);
  if (spec === undefined) {
    if (!fromFields.name) throw new SpecError("name", "is required (give `name`, or `spec` with name=...)");
    return { ...fromFields, name: fromFields.name };
  }
  const fromSpec = parseSpec(spec);
  for (const key of Object.keys(fromFields)) {
    if (key in fromSpec) throw new SpecError(key, "is given both in `spec` and as a separate key");
  }
  return { ...fromSpec, ...fromFields, name: fromSpec.name };
}

/**
 * Fills in every key the user left out with the table's default, giving the volume as it will be made. The
 * rules between keys are checked again on the result, since a caller may have merged parts read separately.
 */
export function withDefaults(partial: PartialVolumeSpec): VolumeSpec {
  const spec: Record<string, unknown> = {};
  for (const def of VOLUME_KEYS) spec[def.field] = partial[def.field] ?? structuredClone(def.default);
  checkTogether(spec as Partial<VolumeSpec>);
  return spec as unknown as VolumeSpec;
}
