import { type handleUnaryCall, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { ConflictError, HoldfastError, InputError, NotFoundError } from "../../errors.js";

/** An answer with the gRPC status code the CSI spec asks for in that case. */
export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** Refuses a request that lacks a field the spec marks REQUIRED (proto3 sends "" and [] for absent ones). */
export function need<T>(value: T | null | undefined | "", field: string): T {
  if (value === undefined || value === null || value === "" || (Array.isArray(value) && value.length === 0)) {
    throw new CsiError(status.INVALID_ARGUMENT, `${field} is required`);
  }
  return value;
}

/** The gRPC code for an error from the volume service: bad input, missing, in the way, or broken. */
function codeOf(err: unknown): status {
  if (err instanceof CsiError) return err.code;
  if (err instanceof HoldfastError) {
    if (err instanceof InputError) return status.INVALID_ARGUMENT;
    if (err instanceof NotFoundError) return status.NOT_FOUND;
    if (err instanceof ConflictError) return status.FAILED_PRECONDITION;
  }
  return status.INTERNAL;
}

/** A unary handler: runs `fn`, answers its result, or its error with the matching code and a clear message. */
export function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (request: Req) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (response) => callback(null, response),
      (err: unknown) => {
        const code = codeOf(err);
        const message = err instanceof Error ? err.message : String(err);
        if (code === status.INTERNAL) logger.error({ err, method }, "csi call failed");
        else logger.info({ method, code: status[code], message }, "csi call refused");
        callback({ code, details: message });
      },
    );
  };
}
