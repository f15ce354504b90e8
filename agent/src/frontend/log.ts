/** The part of a pino logger the frontend uses, so callers can pass pino (or a child of it) directly. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const ignore = (): void => {};

/** Drops every message. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
