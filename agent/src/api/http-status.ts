import {
  ConflictError,
  ForbiddenError,
  type HoldfastError,
  InputError,
  NotFoundError,
  UnavailableError,
} from "../errors.js";

/**
 * The HTTP status the REST API and the Docker plugin answer an error with. Decided here, by the error's class, so the
 * layers below say what went wrong and only the HTTP edge knows how HTTP spells it.
 */
export function httpStatusOf(err: HoldfastError): number {
  if (err instanceof InputError) return 400;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof ConflictError) return 409;
  if (err instanceof UnavailableError) return 503;
  return 500;
}
