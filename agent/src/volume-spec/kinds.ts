import { z } from "zod";
import { SpecError } from "../errors.js";
import { show } from "./show.js";

/** The sorts of value a key can hold. The docs, and later the CLI and the API schema, switch on this. */
export type KindType = "string" | "size" | "int" | "bool" | "enum" | "list" | "map" | "schedule";

/**
 * How one key's value is read, checked and written. `parse` takes either the spec-grammar string or a JSON value
 * (numbers, booleans, arrays, objects from specFromFields) and puts both through the same checks, so both
 * report the same errors. Limits are kept as data too, for the docs and for schemas derived from the table.
 */
export interface Kind<T> {
  readonly type: KindType;
  /** What a value looks like, in a few words for the docs and help text. */
  readonly summary: string;
  /** The range of a number (bytes for a size). */
  readonly min?: number;
  readonly max?: number;
  /** The allowed values of an enum, in the order the docs list them. */
  readonly values?: readonly string[];
  /** Throws SpecError(key, ...) naming the value at fault. */
  parse(raw: unknown, key: string): T;
  /** The spec-grammar form of a value, which parse reads back to the same value. */
  format(value: T): string;
}

/** A single value, checked by a zod schema after its string form (if that is what was given) is decoded. */
export interface ScalarKind<T> extends Kind<T> {
  /** The schema of the value in its JSON form; its one custom message is what errors say. */
  readonly schema: z.ZodType<T>;
}

/** Kinds for which an empty string is a value (the empty collection) rather than a missing one. */
export function isCollection(kind: Kind<unknown>): boolean {
  return kind.type === "list" || kind.type === "map" || kind.type === "schedule";
}

/**
 * Builds a ScalarKind. `decode` turns the string form into the JSON form (`"20G"` to bytes, `"yes"` to true) and
 * may pass through what it cannot read, for the schema to reject with the key's message.
 */
export function scalar<T>(options: {
  type: KindType;
  summary: string;
  schema: z.ZodType<T>;
  decode?: (text: string, key: string) => unknown;
  format?: (value: T) => string;
  min?: number;
  max?: number;
  values?: readonly string[];
}): ScalarKind<T> {
  const { decode = (text: string) => text, format = String, ...rest } = options;
  return {
    ...rest,
    format,
    parse(raw, key) {
      const result = options.schema.safeParse(typeof raw === "string" ? decode(raw, key) : raw);
      if (!result.success) throw new SpecError(key, `${result.error.issues[0]?.message}, not ${show(raw)}`);
      return result.data;
    },
  };
}

/** A whole-number schema whose every failure (type, range, `test`) gives the one message. */
export function wholeNumber(
  min: number,
  max: number,
  error: string,
  test: (n: number) => boolean = () => true,
) {
  return z.number({ error }).min(min, { error }).max(max, { error }).int({ error }).refine(test, { error });
}

/** Digits as a number; anything else is passed on for the schema to reject with the key's message. */
export const decodeInt = (text: string): unknown => (/^\d+$/.test(text) ? Number(text) : text);

/** Splits a `;`-separated string; `""` is the empty collection, but an empty item is a mistake. */
function splitItems(text: string, key: string): string[] {
  if (text === "") return [];
  const items = text.split(";");
  if (items.includes("")) {
    throw new SpecError(key, `has an empty item in ${show(text)} (a doubled ";", or one at either end)`);
  }
  return items;
}

/**
 * A list of scalars: a `;`-separated string or a JSON array. No item may appear twice, where "the same" is
 * decided by `identity` (the value itself for names; the kind of entry for a snapshot schedule).
 */
export function list<T>(
  item: ScalarKind<T>,
  options: { summary: string; type?: "list" | "schedule"; identity?: (value: T) => unknown },
): Kind<T[]> & { readonly item: ScalarKind<T> } {
  const { summary, type = "list", identity = (value: T) => value } = options;
  return {
    type,
    summary,
    item,
    format: (values) => values.map((value) => item.format(value)).join(";"),
    parse(raw, key) {
      const items = typeof raw === "string" ? splitItems(raw, key) : raw;
      if (!Array.isArray(items))
        throw new SpecError(key, `must be a list ("a;b" or an array), not ${show(raw)}`);
      const values = items.map((each) => item.parse(each, key));
      const seen = new Set<unknown>();
      for (const value of values) {
        const id = identity(value);
        if (seen.has(id)) throw new SpecError(key, `${show(id)} appears twice`);
        seen.add(id);
      }
      return values;
    },
  };
}

/** Splits `key:value` at the first colon. */
function splitEntry(text: string, key: string): [string, string] {
  const colon = text.indexOf(":");
  if (colon === -1) throw new SpecError(key, `${show(text)} is not of the form key:value`);
  return [text.slice(0, colon), text.slice(colon + 1)];
}

/** A string-to-string map: `k:v;k2:v2`, or a JSON object. Written with keys sorted, so the form is canonical. */
export function map(
  keyKind: ScalarKind<string>,
  valueKind: ScalarKind<string>,
  summary: string,
): Kind<Record<string, string>> & {
  readonly keyKind: ScalarKind<string>;
  readonly valueKind: ScalarKind<string>;
} {
  return {
    type: "map",
    summary,
    keyKind,
    valueKind,
    format: (record) =>
      Object.keys(record)
        .sort()
        .map((name) => `${name}:${record[name]}`)
        .join(";"),
    parse(raw, key) {
      let entries: [string, unknown][];
      if (typeof raw === "string") entries = splitItems(raw, key).map((text) => splitEntry(text, key));
      else if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) entries = Object.entries(raw);
      else throw new SpecError(key, `must be key:value pairs ("k:v;k2:v2" or an object), not ${show(raw)}`);
      const record: Record<string, string> = {};
      for (const [rawName, rawValue] of entries) {
        const name = keyKind.parse(rawName, key);
        if (Object.hasOwn(record, name)) throw new SpecError(key, `${show(name)} appears twice`);
        record[name] = valueKind.parse(rawValue, key);
      }
      return record;
    },
  };
}
