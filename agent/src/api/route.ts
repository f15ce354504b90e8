import type { FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { Role } from "./tokens.js";

/** One REST route: its schemas validate requests and also produce the OpenAPI document. */
export interface Route<P extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path in fastify form, e.g. `/v1/volumes/:name`. */
  url: string;
  /** One line for the OpenAPI document. */
  summary: string;
  params?: P;
  body?: B;
  /** The body's schema for the OpenAPI document, when it says more than `body` (which may defer to the spec). */
  documentedBody?: Record<string, unknown>;
  /** The JSON Schema of a successful answer, for the OpenAPI document (see responses.ts). @default - no body */
  response?: Record<string, unknown>;
  /** Status of a successful answer. @default 200 */
  status?: number;
  /** The role a token needs for this route. @default "viewer" for GET, "operator" for the rest */
  role?: Role;
  handler: (
    input: { params: z.output<P>; body: z.output<B> },
    req: FastifyRequest,
    reply: FastifyReply,
  ) => Promise<unknown>;
}

/** Declares a route with its types inferred from its schemas. */
export function route<P extends z.ZodType, B extends z.ZodType>(r: Route<P, B>): Route {
  return r as unknown as Route;
}
