/**
 * Logs in hclog's JSON form on stderr, which go-plugin parses and Terraform shows under `TF_LOG`. go-plugin only
 * recognises a line as hclog when `@timestamp` has exactly six fractional digits, so the time is written by hand
 * rather than with Date#toISOString (three digits).
 */

export type Level = "trace" | "debug" | "info" | "warn" | "error";

const RANK: Record<Level, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

/** Field names whose values are never written, whatever logs them: the provider's secrets. */
const SECRET = /token|authorization|password|secret|private_?key/i;

/** `2026-11-25T14:49:28.123000Z`: the millisecond clock padded to the microseconds hclog expects. */
export function hclogTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, -1)}000Z`;
}

/** Replaces the value of every field whose name looks secret, at any depth. */
export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    if (SECRET.test(name)) out[name] = "[redacted]";
    else if (value && typeof value === "object" && !Array.isArray(value))
      out[name] = redact(value as Record<string, unknown>);
    else out[name] = value;
  }
  return out;
}

export interface Logger {
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * A logger writing one hclog JSON line per entry to `write` (stderr). Terraform filters by TF_LOG itself; the
 * provider drops only what is below `minimum`, so the default passes debug lines through for `TF_LOG=DEBUG`.
 */
export function createLogger(
  module = "provider.terraform-provider-holdfast",
  minimum: Level = "debug",
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const log = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    if (RANK[level] < RANK[minimum]) return;
    const entry = {
      "@level": level,
      "@message": message,
      "@module": module,
      "@timestamp": hclogTimestamp(new Date()),
      ...redact(fields),
    };
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    log,
    debug: (message, fields) => log("debug", message, fields),
    info: (message, fields) => log("info", message, fields),
    warn: (message, fields) => log("warn", message, fields),
    error: (message, fields) => log("error", message, fields),
  };
}
