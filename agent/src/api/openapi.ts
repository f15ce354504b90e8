import { z } from "zod";
import type { Route } from "./route.js";
import { volumeRoutes } from "./routes.js";

const ErrorBody = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string" }, message: { type: "string" }, field: { type: "string" } },
    },
  },
};

/** The OpenAPI 3.1 document, derived from the same route schemas that validate requests. */
export function openApiDocument(routes: Route[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, "{$1}");
    const parameters = r.params
      ? Object.keys((z.toJSONSchema(r.params) as { properties?: object }).properties ?? {}).map((name) => ({
          name,
          in: "path",
          required: true,
          schema: { type: "string" },
        }))
      : [];
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = {
      summary: r.summary,
      parameters,
      ...(r.body
        ? {
            requestBody: {
              content: {
                "application/json": { schema: r.documentedBody ?? z.toJSONSchema(r.body, { io: "input" }) },
              },
            },
          }
        : {}),
      responses: {
        [String(r.status ?? 200)]: {
          description: "Success",
          ...(r.response ? { content: { "application/json": { schema: r.response } } } : {}),
        },
        "4XX": {
          description: "Bad input, unknown volume, or a conflict",
          content: { "application/json": { schema: ErrorBody } },
        },
        "5XX": { description: "Failure", content: { "application/json": { schema: ErrorBody } } },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "Holdfast agent API", version },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    security: [{ bearer: [] }],
    paths,
  };
}

/**
 * The document of this build's routes without a running agent, for `docs/api/openapi.json`: only the route
 * definitions are read, no handler runs, so the services they would call are not needed.
 */
export function standaloneApiDocument(version: string) {
  const unused = undefined as never;
  return openApiDocument(volumeRoutes(unused, unused, unused), version);
}
