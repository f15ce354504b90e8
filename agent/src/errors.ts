/**
 * Every error Holdfast raises on purpose is a HoldfastError: it carries a stable code, the field at fault
 * (when one is), and the HTTP status the API answers with, so the CLI, the API and the provider can all
 * report it the same way.
 */
export class HoldfastError extends Error {
  /** A stable, machine-readable code such as `spec.invalid` or `volume.not_found`. */
  readonly code: string;
  /** The input field at fault, when the error is about one. */
  readonly field?: string;
  /** The HTTP status the REST API answers with. */
  readonly status: number;

  constructor(
    code: string,
    message: string,
    options: { field?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.field = options.field;
    this.status = options.status ?? 500;
  }

  toJSON(): { code: string; message: string; field?: string } {
    return { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

/** Bad input: a malformed spec, a value out of range, an unknown key. The user must change what they sent. */
export class SpecError extends HoldfastError {
  constructor(field: string | undefined, message: string) {
    super("spec.invalid", field ? `${field}: ${message}` : message, { field, status: 400 });
  }
}

/** A request that is well formed but names something that does not exist. */
export class NotFoundError extends HoldfastError {
  constructor(kind: string, name: string) {
    super(`${kind}.not_found`, `${kind} "${name}" does not exist`, { field: "name", status: 404 });
  }
}

/** A request that conflicts with the current state: a name in use, a volume attached elsewhere, a shrink. */
export class ConflictError extends HoldfastError {
  constructor(code: string, message: string, field?: string) {
    super(code, message, { field, status: 409 });
  }
}

/** A request from a caller that is who it says but may not do what it asks: a peer node acting on a volume it does not hold. */
export class ForbiddenError extends HoldfastError {
  constructor(code: string, message: string) {
    super(code, message, { status: 403 });
  }
}

/** The operation failed for a reason outside the caller's input: I/O, a child process, the store. */
export class OperationError extends HoldfastError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { status: 500, cause });
  }
}
