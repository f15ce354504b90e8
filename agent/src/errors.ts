/**
 * Every error Holdfast raises on purpose is a HoldfastError: it carries a stable code and the field at fault (when one
 * is), so the CLI, the API and the provider can all report it the same way. Its class says what kind of failure it
 * is; how each edge shows that kind (an HTTP status, a gRPC code, an exit code) is decided at that edge.
 */
export class HoldfastError extends Error {
  /** A stable, machine-readable code such as `spec.invalid` or `volume.not_found`. */
  readonly code: string;
  /** The input field at fault, when the error is about one. */
  readonly field?: string;

  constructor(code: string, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.field = options.field;
  }

  toJSON(): { code: string; message: string; field?: string } {
    return { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

/** Bad input of any kind, with its own code: the caller must change what they sent. */
export class InputError extends HoldfastError {
  constructor(code: string, message: string, field?: string) {
    super(code, message, { field });
  }
}

/** Bad input: a malformed spec, a value out of range, an unknown key. The user must change what they sent. */
export class SpecError extends InputError {
  constructor(field: string | undefined, message: string) {
    super("spec.invalid", field ? `${field}: ${message}` : message, field);
  }
}

/** A request that is well formed but names something that does not exist. */
export class NotFoundError extends HoldfastError {
  constructor(kind: string, name: string) {
    super(`${kind}.not_found`, `${kind} "${name}" does not exist`, { field: "name" });
  }
}

/** A request that conflicts with the current state: a name in use, a volume attached elsewhere, a shrink. */
export class ConflictError extends HoldfastError {
  constructor(code: string, message: string, field?: string) {
    super(code, message, { field });
  }
}

/** A request from a caller that is who it says but may not do what it asks: a peer node acting on a volume it does not hold. */
export class ForbiddenError extends HoldfastError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/**
 * Something the operation needs is out of reach or refusing (the metadata store, a replica): the request was fine
 * and may succeed once that is back. Its message is the caller's to read, unlike an OperationError's.
 */
export class UnavailableError extends HoldfastError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/** The operation failed for a reason outside the caller's input: I/O, a child process, the store. */
export class OperationError extends HoldfastError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
