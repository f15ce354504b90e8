import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { createSecureContext, rootCertificates } from "node:tls";
import got, { type Agents, type Got, HTTPError, type RequestError } from "got";
import type { NodeStatus } from "../../agent/src/cluster/index.js";
import { schemeHint, type TlsProblem, tlsProblem } from "../../agent/src/tls-trust/index.js";
import type { VolumeSetView, VolumeView } from "../../agent/src/volumes/index.js";
import type { Logger } from "./plugin/log.js";
import { type Diagnostic, error } from "./protocol/index.js";

export type { NodeStatus, VolumeSetView, VolumeView };

/** The agent's `GET /v1/cluster`. */
export interface ClusterView {
  id: string;
  store: string;
  nodes: NodeStatus[];
  volumes: { total: number; attached: number; detached: number };
}

export interface ClientOptions {
  /** The agent's API, e.g. `http://127.0.0.1:9001`. */
  endpoint: string;
  token: string;
  /** CA certificate (PEM) to verify an https endpoint with. @default - Node's bundled CA list and the certificates in NODE_EXTRA_CA_CERTS */
  ca?: string;
  /** Limit on one HTTP request, in milliseconds. */
  requestTimeoutMs: number;
  /** Retries of a request that failed for a transient reason. */
  maxRetries: number;
  logger: Logger;
}

/**
 * A failed API call: the agent's own error (`{error:{code,message,field}}` with its status), or a request that
 * never got an answer (`status` undefined, `code` the network error such as ECONNREFUSED).
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
    readonly field?: string,
    /** Set when the connection failed on the agent's certificate: not trusted, not for this host, or expired. */
    readonly tls?: TlsProblem,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Statuses and network errors worth another try: the agent restarting, a proxy in between, a brief outage. */
const RETRY_STATUS = [408, 429, 502, 503, 504];
const RETRY_ERRORS = ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH"];
const BACKOFF_MS = 250;
const BACKOFF_LIMIT_MS = 4000;

/**
 * A POST (create) is retried only when the agent cannot have acted on it: the connection was refused, or it
 * answered 503. Retrying after a reset could create the volume twice, and the second try would fail as a conflict.
 */
function retryDelay({
  attemptCount,
  error,
  computedValue,
}: {
  attemptCount: number;
  error: RequestError;
  computedValue: number;
}) {
  if (computedValue === 0) return 0;
  if (error.options.method === "POST" && error.code !== "ECONNREFUSED" && error.response?.statusCode !== 503)
    return 0;
  return Math.min(BACKOFF_MS * 2 ** (attemptCount - 1), BACKOFF_LIMIT_MS);
}

function apiErrorOf(err: unknown, endpoint: string): ApiError {
  if (err instanceof HTTPError) {
    const body = err.response.body as
      | { error?: { code?: string; message?: string; field?: string } }
      | undefined;
    const status = err.response.statusCode;
    return new ApiError(
      body?.error?.message ?? `HTTP ${status}`,
      body?.error?.code ?? `http.${status}`,
      status,
      body?.error?.field,
    );
  }
  const e = err as RequestError;
  if (e.name === "AbortError" || e.code === "ERR_ABORTED")
    return new ApiError(
      "the request was cancelled (Terraform is stopping, or the operation timed out)",
      "aborted",
    );
  const tls = tlsProblem(e.code);
  return new ApiError(
    `cannot reach the Holdfast agent at ${endpoint}: ${e.message}${schemeHint(endpoint, e.code)}`,
    e.code ?? "network",
    undefined,
    undefined,
    tls,
  );
}

/**
 * Where the provider's start line (scripts/build-provider.mjs) puts NODE_EXTRA_CA_CERTS, so that Node does not parse
 * those certificates at every start, before the handshake, when only an https endpoint needs them.
 */
export const EXTRA_CA_ENV = "HOLDFAST_PROVIDER_EXTRA_CA_CERTS";

/**
 * An https agent trusting what Node would with NODE_EXTRA_CA_CERTS: its bundled roots and that file's certificates
 * (in one TLS context, as Node makes its root store once). Undefined when there is no such file, or it cannot be
 * read: Node warns and goes on without it, and so does this.
 */
function extraCaAgents(logger: Logger): Agents | undefined {
  const file = process.env[EXTRA_CA_ENV];
  if (!file) return undefined;
  try {
    const ca = [...rootCertificates, readFileSync(file, "utf8")];
    return { https: new Agent({ keepAlive: true, secureContext: createSecureContext({ ca }) }) };
  } catch (err) {
    logger.warn("ignoring extra CA certificates", { file, error: (err as Error).message });
    return undefined;
  }
}

/** The agent's REST API, through `got`: bearer token, JSON, a timeout per request, retries with backoff. */
export class HoldfastClient {
  private readonly http: Got;

  constructor(private readonly options: ClientOptions) {
    const { logger } = options;
    this.http = got.extend({
      prefixUrl: options.endpoint,
      headers: { authorization: `Bearer ${options.token}` },
      responseType: "json",
      timeout: { request: options.requestTimeoutMs },
      https: options.ca ? { certificateAuthority: options.ca } : {},
      // Node's rule: an explicit CA (ca_certificate, ca_file) replaces the roots and NODE_EXTRA_CA_CERTS alike.
      agent: !options.ca && options.endpoint.startsWith("https:") ? extraCaAgents(logger) : undefined,
      retry: {
        limit: options.maxRetries,
        methods: ["GET", "PUT", "PATCH", "DELETE", "POST"],
        statusCodes: RETRY_STATUS,
        errorCodes: RETRY_ERRORS,
        calculateDelay: retryDelay,
      },
      hooks: {
        beforeRetry: [
          (error, retryCount) =>
            logger.warn("retrying request", {
              method: error.options.method,
              url: String(error.options.url),
              attempt: retryCount,
              reason: error.response?.statusCode ?? error.code,
            }),
        ],
        afterResponse: [
          (response) => {
            logger.debug("request", {
              method: response.request.options.method,
              url: response.url,
              status: response.statusCode,
              ms: response.timings.phases.total,
            });
            return response;
          },
        ],
      },
    });
  }

  private async call<T>(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    signal?: AbortSignal,
    body?: unknown,
  ): Promise<T> {
    try {
      const response = await this.http<T>(path, { method, json: body, signal });
      return response.body;
    } catch (err) {
      throw apiErrorOf(err, this.options.endpoint);
    }
  }

  cluster(signal?: AbortSignal): Promise<ClusterView> {
    return this.call("GET", "v1/cluster", signal);
  }

  /** One volume by name or id, or null when there is none. */
  async volume(nameOrId: string, signal?: AbortSignal): Promise<VolumeView | null> {
    try {
      return await this.call<VolumeView>("GET", `v1/volumes/${encodeURIComponent(nameOrId)}`, signal);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  /** Creates a volume, or with `scale` above 1 a set, which the agent answers with instead. */
  createVolume(body: Record<string, unknown>, signal?: AbortSignal): Promise<VolumeView | VolumeSetView> {
    return this.call("POST", "v1/volumes", signal, body);
  }

  /** One volume set by name, or null when it has no members. */
  async volumeSet(name: string, signal?: AbortSignal): Promise<VolumeSetView | null> {
    try {
      return await this.call<VolumeSetView>("GET", `v1/volume-sets/${encodeURIComponent(name)}`, signal);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  /** Deletes every member of a set; a set that is already gone counts as deleted. */
  async deleteVolumeSet(name: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.call("DELETE", `v1/volume-sets/${encodeURIComponent(name)}`, signal);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return;
      throw err;
    }
  }

  /** Changes a volume in place: `{size}`, `{repl}`, `{labels}` and the other keys the agent can change online. */
  updateVolume(nameOrId: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<VolumeView> {
    return this.call("PATCH", `v1/volumes/${encodeURIComponent(nameOrId)}`, signal, body);
  }

  /** Deletes a volume; one that is already gone counts as deleted. */
  async deleteVolume(nameOrId: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.call("DELETE", `v1/volumes/${encodeURIComponent(nameOrId)}`, signal);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return;
      throw err;
    }
  }
}

/**
 * An API failure as a diagnostic: the agent's field mapped to an attribute by `pathOf`, and a refused token said
 * plainly, since it is the provider's `token` that is wrong and not the resource.
 */
export function apiDiagnostic(
  err: unknown,
  summary: string,
  pathOf: (field: string | undefined) => string[] | undefined = () => undefined,
): Diagnostic {
  if (!(err instanceof ApiError)) return error(summary, err instanceof Error ? err.message : String(err));
  if (err.status === 401)
    return error(
      summary,
      `The agent refused the provider's token (set token, or HOLDFAST_TOKEN): ${err.message}`,
    );
  return error(summary, err.message, pathOf(err.field));
}
