import { z } from "zod";
import { SpecError } from "../errors.js";
import { decodeInt, list, scalar, wholeNumber } from "./kinds.js";
import { show } from "./show.js";

const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * One snapshot policy, Portworx's forms made structured: every MINUTES, daily at a time, weekly on a day at a
 * time, or monthly on a day of the month at a time; each keeps the newest KEEP snapshots.
 */
export type SnapScheduleEntry =
  | { kind: "periodic"; minutes: number; keep: number }
  | { kind: "daily"; hour: number; minute: number; keep: number }
  | { kind: "weekly"; weekday: Weekday; hour: number; minute: number; keep: number }
  | { kind: "monthly"; day: number; hour: number; minute: number; keep: number };

/** Limits, as the docs state them. Day of month stops at 28 so that every month has the day. */
export const SCHEDULE_LIMITS = { minutes: 1440, keep: 1000, day: 28 } as const;

const FORMS = "periodic=MINUTES#KEEP, daily=HH:MM#KEEP, weekly=DAY@HH:MM#KEEP or monthly=DAY@HH:MM#KEEP";

/** A whole number whose every failure reads `what must be min to max`. */
const intIn = (what: string, min: number, max: number) =>
  wholeNumber(min, max, `${what} must be ${min} to ${max}`);

const time = { hour: intIn("hour", 0, 23), minute: intIn("minute", 0, 59) };
const keep = intIn("keep", 1, SCHEDULE_LIMITS.keep);
const strict = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? `unknown field ${show(issue.keys[0])}` : undefined,
  });

const entrySchema: z.ZodType<SnapScheduleEntry> = z.discriminatedUnion(
  "kind",
  [
    strict({ kind: z.literal("periodic"), minutes: intIn("minutes", 1, SCHEDULE_LIMITS.minutes), keep }),
    strict({ kind: z.literal("daily"), ...time, keep }),
    strict({
      kind: z.literal("weekly"),
      weekday: z.enum(WEEKDAYS, { error: "the day must be a weekday name such as sunday" }),
      ...time,
      keep,
    }),
    strict({ kind: z.literal("monthly"), day: intIn("day", 1, SCHEDULE_LIMITS.day), ...time, keep }),
  ],
  { error: `each entry must be one of ${FORMS}` },
);

/** `HH:MM` as hour and minute. */
function clock(text: string, entry: string, key: string) {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text);
  if (!match) throw new SpecError(key, `the time in ${show(entry)} must be HH:MM`);
  return { hour: Number(match[1]), minute: Number(match[2]) };
}

/** Reads one Portworx-form entry, `#` standing for the comma the spec grammar already uses between pairs. */
function decodeEntry(entry: string, key: string): unknown {
  const match = /^([a-z]+)=([^#]*)#(.*)$/i.exec(entry);
  if (!match) throw new SpecError(key, `${show(entry)} is not a schedule entry (use ${FORMS})`);
  const [, name = "", when = "", keepText = ""] = match;
  const kind = name.toLowerCase();
  const keep = decodeInt(keepText);
  if (kind === "periodic") return { kind, minutes: decodeInt(when), keep };
  if (kind === "daily") return { kind, ...clock(when, entry, key), keep };
  const at = when.indexOf("@");
  if ((kind === "weekly" || kind === "monthly") && at !== -1) {
    const day = when.slice(0, at);
    const which = kind === "weekly" ? { weekday: day.toLowerCase() } : { day: decodeInt(day) };
    return { kind, ...which, ...clock(when.slice(at + 1), entry, key), keep };
  }
  throw new SpecError(key, `${show(entry)} is not a schedule entry (use ${FORMS})`);
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Writes an entry back in Portworx form. */
function formatEntry(entry: SnapScheduleEntry): string {
  if (entry.kind === "periodic") return `periodic=${entry.minutes}#${entry.keep}`;
  const at = `${pad(entry.hour)}:${pad(entry.minute)}`;
  if (entry.kind === "daily") return `daily=${at}#${entry.keep}`;
  if (entry.kind === "weekly") return `weekly=${entry.weekday}@${at}#${entry.keep}`;
  return `monthly=${entry.day}@${at}#${entry.keep}`;
}

/** The `snap_schedule` kind: `;`-separated entries, each kind at most once. */
export const snapSchedule = list(
  scalar({ type: "schedule", summary: FORMS, schema: entrySchema, decode: decodeEntry, format: formatEntry }),
  { type: "schedule", summary: `entries separated by ";": ${FORMS}`, identity: (entry) => entry.kind },
);
