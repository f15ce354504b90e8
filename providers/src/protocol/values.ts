import { decode, Encoder, ExtData } from "@msgpack/msgpack";

/**
 * Terraform values as the provider handles them: plain JSON-like values, null, and UNKNOWN for a value Terraform
 * will only know after apply. On the wire a DynamicValue is msgpack (cty's encoding): unknown is an extension
 * (type 0; type 12 for a "refined" unknown), and a `dynamic` attribute's value is the pair [type JSON, value].
 */

export const UNKNOWN: unique symbol = Symbol("unknown");
export type Unknown = typeof UNKNOWN;

export type Value = null | Unknown | string | number | boolean | Value[] | { [name: string]: Value };
export type ObjectValue = { [name: string]: Value };

/** A cty type in its JSON form, as schemas carry it: `"string"`, `["list","string"]`, `["object",{...}]`. */
export type CtyType =
  | "string"
  | "number"
  | "bool"
  | "dynamic"
  | ["list" | "set" | "map", CtyType]
  | ["object", Record<string, CtyType>];

export const isUnknown = (value: unknown): value is Unknown => value === UNKNOWN;

/** The cty type of a known JSON value given to a `dynamic` attribute. */
function typeOfDynamic(value: Value): CtyType {
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  if (typeof value === "boolean") return "bool";
  throw new TypeError(
    `the provider only puts strings, numbers and booleans in dynamic attributes, not ${String(value)}`,
  );
}

/** Turns what msgpack decoded into a Value of the type `type`: extensions become UNKNOWN, numbers numbers. */
function fromWire(raw: unknown, type: CtyType): Value {
  if (raw === null || raw === undefined) return null;
  if (raw instanceof ExtData) return UNKNOWN;
  if (type === "dynamic") {
    const [typeJson, inner] = raw as [Uint8Array | string, unknown];
    const text = typeof typeJson === "string" ? typeJson : Buffer.from(typeJson).toString("utf8");
    return fromWire(inner, JSON.parse(text) as CtyType);
  }
  if (type === "number") return typeof raw === "string" ? Number(raw) : Number(raw);
  if (type === "string" || type === "bool") return raw as Value;
  const [kind, inner] = type;
  if (kind === "list" || kind === "set") return (raw as unknown[]).map((item) => fromWire(item, inner));
  const record = raw as Record<string, unknown>;
  const out: ObjectValue = {};
  if (kind === "map") {
    for (const [name, item] of Object.entries(record)) out[name] = fromWire(item, inner);
    return out;
  }
  for (const [name, attrType] of Object.entries(inner)) out[name] = fromWire(record[name], attrType);
  return out;
}

/** The msgpack-ready form of a Value of type `type`; every attribute of an object is written, null when absent. */
function toWire(value: Value | undefined, type: CtyType): unknown {
  if (value === null || value === undefined) return null;
  if (value === UNKNOWN) return new ExtData(0, new Uint8Array([0]));
  if (type === "dynamic") return [Buffer.from(JSON.stringify(typeOfDynamic(value))), value];
  if (typeof type === "string") return value;
  const [kind, inner] = type;
  if (kind === "list" || kind === "set") return (value as Value[]).map((item) => toWire(item, inner));
  const record = value as ObjectValue;
  const out: Record<string, unknown> = {};
  if (kind === "map") {
    for (const [name, item] of Object.entries(record)) out[name] = toWire(item, inner);
    return out;
  }
  for (const [name, attrType] of Object.entries(inner)) out[name] = toWire(record[name], attrType);
  return out;
}

const encoder = new Encoder({ ignoreUndefined: false, forceIntegerToFloat: false });

/** Reads a DynamicValue's msgpack bytes; an empty buffer (no value sent) reads as null. */
export function decodeValue(bytes: Uint8Array | undefined, type: CtyType): Value {
  if (!bytes || bytes.length === 0) return null;
  return fromWire(decode(bytes), type);
}

export function encodeValue(value: Value, type: CtyType): Uint8Array {
  return encoder.encode(toWire(value, type));
}

/**
 * Reads a resource's state as Terraform stores it (JSON, with a `dynamic` value as `{"value":...,"type":...}`) into a
 * Value of the current type: attributes the state lacks are null, attributes the schema no longer has are dropped.
 */
export function fromJsonState(raw: unknown, type: CtyType): Value {
  if (raw === null || raw === undefined) return null;
  if (type === "dynamic") {
    const { value, type: inner } = raw as { value: unknown; type: CtyType };
    return fromJsonState(value, inner);
  }
  if (type === "number") return Number(raw);
  if (type === "string" || type === "bool") return raw as Value;
  const [kind, inner] = type;
  if (kind === "list" || kind === "set") return (raw as unknown[]).map((item) => fromJsonState(item, inner));
  const record = raw as Record<string, unknown>;
  const out: ObjectValue = {};
  if (kind === "map") {
    for (const [name, item] of Object.entries(record)) out[name] = fromJsonState(item, inner);
    return out;
  }
  for (const [name, attrType] of Object.entries(inner)) out[name] = fromJsonState(record[name], attrType);
  return out;
}
