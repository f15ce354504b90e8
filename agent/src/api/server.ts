import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import type { z } from "zod";
import { HoldfastError, SpecError } from "../errors.js";
import type { VolumeService } from "../volumes/index.js";
import { tokenMatches } from "./auth.js";
import { createMetrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import type { Route } from "./route.js";
import { type ClusterInfo, volumeRoutes } from "./routes.js";

export interface ApiServerOptions {
  /** The volume service the routes call. */
  volumes: VolumeService;
  /** Cluster and node status. */
  cluster: ClusterInfo;
  /** Bearer token every request must carry. */
  token: string;
  logger: Logger;
  /** Version reported in the OpenAPI document. */
  version: string;
}

/** Validates one part of a request, turning the first zod issue into a SpecError naming the field. */
function validate<T extends z.ZodType>(schema: T | undefined, value: unknown): z.output<T> {
  if (!schema) return value as z.output<T>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new SpecError(issue?.path.join(".") || undefined, issue?.message ?? "invalid request");
}

/** The REST API: bearer-token auth on every route, JSON errors `{"error":{"code","message","field"}}`. */
export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // One debug line per request from our own hook, instead of fastify's two info lines.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const routes: Route[] = volumeRoutes(options.volumes, options.cluster);
  const document = openApiDocument(routes, options.version);

  app.addHook("onRequest", async (req, reply) => {
    if (!tokenMatches(req.headers.authorization, options.token)) {
      reply.header("www-authenticate", "Bearer");
      return reply.code(401).send({
        error: { code: "auth.required", message: "a valid token is required: Authorization: Bearer <token>" },
      });
    }
  });

  app.addHook("onResponse", async (req, reply) => {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request",
    );
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HoldfastError) {
      if (err.status >= 500) req.log.error({ err }, err.message);
      return reply.code(err.status).send({ error: err.toJSON() });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ error: { code: "request.invalid", message: (err as Error).message } });
    }
    req.log.error({ err }, "request failed");
    return reply.code(500).send({ error: { code: "internal", message: (err as Error).message } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: { code: "route.not_found", message: `no route ${req.method} ${req.url}` } }),
  );

  app.get("/v1/openapi.json", async () => document);
  const metrics = createMetrics(options.volumes);
  app.get("/metrics", async (_req, reply) => {
    reply.type(metrics.contentType);
    return metrics.metrics();
  });
  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      handler: async (req, reply) => {
        const params = validate(r.params, req.params);
        const body = validate(r.body, req.body);
        const result = await r.handler({ params, body }, req, reply);
        reply.code(r.status ?? 200);
        return r.status === 204 ? reply.send() : result;
      },
    });
  }
  return app;
}
