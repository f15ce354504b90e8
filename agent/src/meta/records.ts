import type { Logger } from "pino";
import type { z } from "zod";
import { OperationError } from "../errors.js";

/**
 * Reading records back from the store: it is reachable by more than this agent, and its records name directories,
 * nodes and addresses, so each is checked with a schema before anything acts on it
 * (docs/decisions/0010-trust-boundary.md). The schemas live with the records (volumes/record-schemas.ts,
 * cluster/membership.ts).
 */

/** A record that is not what its key says it is: never acted on. */
export class BadRecordError extends OperationError {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super("store.bad_record", `the store record at ${key} is not valid (${reason}); it is ignored`);
  }
}

/** Says what is wrong if a record does not match the key it is filed under, or undefined if it does. */
export type Agrees<T> = (record: T, key: string) => string | undefined;

/** A record of `what`s filed as `prefix` + its own id: one filed under another's id is an impostor. */
export function filedUnder<T>(prefix: string, what: string, idOf: (record: T) => string): Agrees<T> {
  return (record, key) => {
    const filed = key.slice(prefix.length);
    return filed === idOf(record) ? undefined : `it says ${what} ${idOf(record)} but is filed as ${filed}`;
  };
}

/** Parses the record at `key` with `schema`, and checks it `agrees` with its key. Throws BadRecordError. */
export function readRecord<T>(
  schema: z.ZodType<T, unknown>,
  entry: { key: string; value: string },
  agrees: Agrees<T> = () => undefined,
): T {
  let json: unknown;
  try {
    json = JSON.parse(entry.value);
  } catch {
    throw new BadRecordError(entry.key, "not JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw new BadRecordError(entry.key, `${at}${issue?.message ?? "invalid"}`);
  }
  const mismatch = agrees(parsed.data, entry.key);
  if (mismatch) throw new BadRecordError(entry.key, mismatch);
  return parsed.data;
}

/** The records of a listing that are valid; each bad one goes to `report` and is left out. */
export function readRecords<T>(
  schema: z.ZodType<T, unknown>,
  entries: Array<{ key: string; value: string }>,
  report: (err: BadRecordError) => void,
  agrees?: Agrees<T>,
): T[] {
  const records: T[] = [];
  for (const entry of entries) {
    try {
      records.push(readRecord(schema, entry, agrees));
    } catch (err) {
      if (!(err instanceof BadRecordError)) throw err;
      report(err);
    }
  }
  return records;
}

/** Logs each bad record once per key and reason: a planted record is reported, not repeated every repair tick. */
export function badRecordReporter(logger: Logger): (err: BadRecordError) => void {
  const seen = new Set<string>();
  return (err) => {
    const id = `${err.key}\n${err.reason}`;
    if (seen.has(id)) return;
    seen.add(id);
    logger.warn({ key: err.key, reason: err.reason }, "store: a record that is not valid is ignored");
  };
}
