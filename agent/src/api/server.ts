import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import type { z } from "zod";
import { ForbiddenError, HoldfastError, SpecError } from "../errors.js";
import type { VolumeService } from "../volumes/index.js";
import { httpStatusOf } from "./http-status.js";
import { createMetrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import type { Route } from "./route.js";
import { type ClusterInfo, volumeRoutes } from "./routes.js";
import { type ApiTokens, allows, type Principal } from "./tokens.js";

export interface ApiServerOptions {
  /** The volume service the routes call. */
  volumes: VolumeService;
  /** Cluster and node status. */
  cluster: ClusterInfo;
  /** The tokens a request may carry (`Authorization: Bearer <token>`), and what each may do. */
  tokens: ApiTokens;
  /** Where every change and every refused request is written: who, what, when, and the outcome. */
  audit: Logger;
  logger: Logger;
  /** Version reported in the OpenAPI document. */
  version: string;
  /** Milliseconds a client has to send a whole request, headers and body. */
  requestTimeoutMs: number;
  /** Connections open at once; past it a new one is closed at once. */
  maxConnections: number;
  /** The server certificate and key when the API serves HTTPS (api-transport.ts). @default - plain HTTP */
  https?: { cert: string; key: string; minVersion: "TLSv1.2" };
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
  const serverOptions = {
    headersTimeout: options.requestTimeoutMs,
    // Node checks the request and header timeouts this often; its 30 s default would let a 1 s bound be 31 s.
    connectionsCheckingInterval: Math.min(1000, options.requestTimeoutMs),
  };
  // Fastify's https instance has another type parameter; routes, hooks and listen are the same on both.
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // A slow client (a trickled request, an idle connection) holds a socket and a file descriptor: each is bounded.
    // Node answers 408 to a request not in within this; a connection that sends nothing at all is closed below.
    requestTimeout: options.requestTimeoutMs,
    keepAliveTimeout: 5000,
    ...(options.https
      ? // A handshake gets the same bound as a request: Node's default is 120 s.
        { https: { ...serverOptions, ...options.https, handshakeTimeout: options.requestTimeoutMs } }
      : { http: serverOptions }),
    // Request ids that mean something only in this agent's log, where a 500's details are.
    genReqId: () => randomBytes(6).toString("hex"),
    // One debug line per request from our own hook, instead of fastify's two info lines.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  const routes: Route[] = volumeRoutes(options.volumes, options.cluster, options.tokens);
  const document = openApiDocument(routes, options.version);

  const principals = new WeakMap<FastifyRequest, Principal>();
  app.addHook("onRequest", async (req, reply) => {
    const principal = await options.tokens.authenticate(req.headers.authorization);
    if (!principal) {
      reply.header("www-authenticate", "Bearer");
      return reply.code(401).send({
        error: {
          code: "auth.required",
          message:
            "a valid token is required: Authorization: Bearer <token> (unknown, revoked and expired ones are not)",
        },
      });
    }
    principals.set(req, principal);
  });

  // The audit log: every change and every refusal, with the token's id (never its secret).
  app.addHook("onResponse", async (req, reply) => {
    const refused = reply.statusCode === 401 || reply.statusCode === 403;
    if (req.method === "GET" && !refused) return;
    const principal = principals.get(req);
    options.audit.info(
      {
        token: principal?.token ?? null,
        role: principal?.role ?? null,
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        outcome: refused ? "refused" : reply.statusCode < 400 ? "done" : "failed",
        peer: req.ip,
        reqId: req.id,
      },
      "audit",
    );
  });

  app.addHook("onResponse", async (req, reply) => {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request",
    );
  });

  // A 500 says what failed (its code) and where to read the rest (the request id in this agent's log), never the
  // details: they hold command lines, paths and peers' answers. Other errors are the caller's to read.
  const internal = (req: FastifyRequest, code: string) => ({
    error: { code, message: `internal error: see the agent's log for request ${req.id}`, request: req.id },
  });
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HoldfastError) {
      const status = httpStatusOf(err);
      if (status >= 500) req.log.error({ err }, err.message);
      if (status === 500) return reply.code(500).send(internal(req, err.code));
      return reply.code(status).send({ error: err.toJSON() });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ error: { code: "request.invalid", message: (err as Error).message } });
    }
    req.log.error({ err }, "request failed");
    return reply.code(500).send(internal(req, "internal"));
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
        const needed = r.role ?? (r.method === "GET" ? "viewer" : "operator");
        const principal = principals.get(req) as Principal;
        if (!allows(principal.role, needed)) {
          throw new ForbiddenError(
            "auth.forbidden",
            `this token (${principal.token}, role ${principal.role}) may not ${r.method} ${r.url}: that needs role ${needed}`,
          );
        }
        const params = validate(r.params, req.params);
        const body = validate(r.body, req.body);
        const result = await r.handler({ params, body }, req, reply);
        reply.code(r.status ?? 200);
        return r.status === 204 ? reply.send() : result;
      },
    });
  }
  app.server.maxConnections = options.maxConnections;
  // Node's request timeout starts at a request's first byte: a connection that never sends one would be held for
  // ever. It gets twice the bound for its first request; after a response, keepAliveTimeout bounds it.
  // Over TLS the request's socket is the TLS one, which exists once the handshake is done.
  const firstRequest = new WeakMap<Socket, NodeJS.Timeout>();
  app.server.on(options.https ? "secureConnection" : "connection", (socket: Socket) => {
    firstRequest.set(socket, setTimeout(() => socket.destroy(), 2 * options.requestTimeoutMs).unref());
  });
  app.server.on("request", (req: IncomingMessage) => clearTimeout(firstRequest.get(req.socket)));
  return app;
}
