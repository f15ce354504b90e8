import type { BlockSchema, Diagnostic, NestedBlockSchema, ObjectValue, Value } from "./protocol/index.js";
import { error } from "./protocol/index.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;

/** Reads a Go-style duration (`90s`, `5m`, `1h30m`, `500ms`) into milliseconds; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (text === "") return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let end = 0;
  for (const match of text.matchAll(PART)) {
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? 0);
    end = (match.index ?? 0) + match[0].length;
  }
  return end === text.length && total > 0 ? Math.round(total) : undefined;
}

export type Operation = "create" | "update" | "delete";

/** How long an operation may take, with its retries, before the provider gives up on it. */
export const DEFAULT_TIMEOUTS_MS: Record<Operation, number> = {
  create: 600_000,
  update: 600_000,
  delete: 600_000,
};

/** The `timeouts { create = "10m" ... }` block, as terraform-plugin-framework-timeouts spells it. */
export const timeoutsBlock: NestedBlockSchema = {
  typeName: "timeouts",
  block: {
    description: "How long each operation may take, retries included, as durations such as `90s` or `10m`.",
    attributes: (["create", "update", "delete"] as const).map((op) => ({
      name: op,
      type: "string",
      optional: true,
      description: `Limit on ${op}. Default: \`${DEFAULT_TIMEOUTS_MS[op] / 60_000}m\`.`,
    })),
  } satisfies BlockSchema,
};

/** Checks each duration in a `timeouts` block value; unknown values are left for later. */
export function validateTimeouts(value: Value): Diagnostic[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  const diagnostics: Diagnostic[] = [];
  for (const [op, text] of Object.entries(value as ObjectValue)) {
    if (typeof text === "string" && parseDuration(text) === undefined)
      diagnostics.push(
        error("Invalid duration", `"${text}" is not a duration such as 90s, 10m or 1h30m`, ["timeouts", op]),
      );
  }
  return diagnostics;
}

/** The limit for `op` from a `timeouts` block value, or the default. */
export function timeoutFor(value: Value, op: Operation): number {
  const text =
    value && typeof value === "object" && !Array.isArray(value) ? (value as ObjectValue)[op] : null;
  return (typeof text === "string" && parseDuration(text)) || DEFAULT_TIMEOUTS_MS[op];
}
