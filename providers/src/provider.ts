import { readFile } from "node:fs/promises";
import { ApiError, HoldfastClient } from "./client.js";
import { clusterDataSource } from "./data-source-cluster.js";
import { volumeDataSource } from "./data-source-volume.js";
import type { Logger } from "./plugin/log.js";
import {
  type AttributeSchema,
  type Diagnostic,
  error,
  hasErrors,
  isUnknown,
  type ObjectValue,
} from "./protocol/index.js";
import { volumeResource } from "./resource-volume.js";
import { parseDuration } from "./timeouts.js";
import type { DataSourceType, ProviderContext, ResourceType } from "./types.js";

/*
 * Model: the provider's own configuration. Every attribute may instead come from the environment, so a CI job can
 * keep the token out of the configuration entirely.
 */

const DEFAULT_TIMEOUT = "30s";
const DEFAULT_RETRIES = 3;
const MAX_RETRIES = 10;

export const providerSchema = {
  description: "The Holdfast storage fabric: volumes on demand from a cluster's REST API.",
  attributes: [
    {
      name: "endpoint",
      type: "string",
      optional: true,
      description:
        "URL of a Holdfast agent's REST API, e.g. `https://10.0.0.11:9001`: an agent with a cluster certificate serves only `https`. An `http` URL is accepted for any host; the agent serves plain HTTP only on loopback or when told to (`apiPlainHttp`, a lab where the token crosses the network in clear). Default: `HOLDFAST_API`.",
    },
    {
      name: "token",
      type: "string",
      optional: true,
      sensitive: true,
      description: "The API's bearer token (the agent's `data-dir/token`). Default: `HOLDFAST_TOKEN`.",
    },
    {
      name: "ca_certificate",
      type: "string",
      optional: true,
      description:
        "The cluster CA's certificate (PEM, the `ca.crt` of `holdfast cluster init`) that an `https` endpoint's certificate must be signed by. Not secret. Conflicts with `ca_file`. Default: `ca_file`.",
    },
    {
      name: "ca_file",
      type: "string",
      optional: true,
      description:
        "PEM file of the CA that an `https` endpoint's certificate must be signed by: the cluster's `ca.crt`. Default: `HOLDFAST_CA`; with neither, Node's bundled CA list and the certificates in NODE_EXTRA_CA_CERTS.",
    },
    {
      name: "request_timeout",
      type: "string",
      optional: true,
      description: `Limit on each API request, as a duration such as \`30s\`. Default: \`${DEFAULT_TIMEOUT}\`.`,
    },
    {
      name: "max_retries",
      type: "number",
      optional: true,
      description: `Retries, with backoff, of a request that failed for a transient reason (agent unreachable, 502, 503, 504). 0 to ${MAX_RETRIES}. Default: \`${DEFAULT_RETRIES}\`.`,
    },
  ] satisfies AttributeSchema[],
};

export const resources: readonly ResourceType[] = [volumeResource];
export const dataSources: readonly DataSourceType[] = [clusterDataSource, volumeDataSource];

/** A configuration value, or the environment's when the configuration leaves it out (or cannot know it yet). */
function setting(config: ObjectValue, name: string, env?: string): string | undefined {
  const value = config[name] ?? null;
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number") return String(value);
  return env === undefined ? undefined : process.env[env] || undefined;
}

/** The checks that need no network, for ValidateProviderConfig and again in ConfigureProvider. */
export function validateProviderConfig(config: ObjectValue): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const endpoint = config.endpoint ?? null;
  if (typeof endpoint === "string") {
    const url = URL.canParse(endpoint) ? new URL(endpoint) : undefined;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:"))
      diagnostics.push(
        error("Invalid endpoint", `"${endpoint}" is not an http(s) URL such as http://127.0.0.11:9001.`, [
          "endpoint",
        ]),
      );
  }
  const caCertificate = config.ca_certificate ?? null;
  if (typeof caCertificate === "string" && typeof (config.ca_file ?? null) === "string")
    diagnostics.push(
      error("Conflicting CA settings", "Set ca_certificate or ca_file, not both.", ["ca_certificate"]),
    );
  else if (typeof caCertificate === "string" && !caCertificate.includes("-----BEGIN CERTIFICATE-----"))
    diagnostics.push(
      error("Invalid ca_certificate", "is not a PEM certificate (-----BEGIN CERTIFICATE-----).", [
        "ca_certificate",
      ]),
    );
  const timeout = config.request_timeout ?? null;
  if (typeof timeout === "string" && parseDuration(timeout) === undefined)
    diagnostics.push(
      error("Invalid request_timeout", `"${timeout}" is not a duration such as 30s or 2m.`, [
        "request_timeout",
      ]),
    );
  const retries = config.max_retries ?? null;
  if (typeof retries === "number" && (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES))
    diagnostics.push(
      error("Invalid max_retries", `must be a whole number from 0 to ${MAX_RETRIES}, not ${retries}.`, [
        "max_retries",
      ]),
    );
  return diagnostics;
}

/** The CA the API client trusts, and the attribute it came from, for diagnostics to point at. */
interface TrustedCa {
  pem: string;
  /** `ca_certificate`, `ca_file` or `HOLDFAST_CA` (a file, like ca_file). */
  from: string;
  attribute: "ca_certificate" | "ca_file";
}

/** The CA from ca_certificate, ca_file or HOLDFAST_CA, in that order; a file that cannot be read is a diagnostic. */
async function trustedCa(config: ObjectValue, diagnostics: Diagnostic[]): Promise<TrustedCa | undefined> {
  const pem = setting(config, "ca_certificate");
  if (pem) return { pem, from: "ca_certificate", attribute: "ca_certificate" };
  const file = setting(config, "ca_file", "HOLDFAST_CA");
  if (!file) return undefined;
  const from = setting(config, "ca_file") ? "ca_file" : "HOLDFAST_CA";
  try {
    return { pem: await readFile(file, "utf8"), from, attribute: "ca_file" };
  } catch (err) {
    diagnostics.push(error(`Cannot read ${from}`, (err as Error).message, ["ca_file"]));
    return undefined;
  }
}

/** A certificate the client refused, said as what to change: the CA setting, or the agent's certificate. */
function certificateDiagnostic(endpoint: string, e: ApiError, trust: TrustedCa | undefined): Diagnostic {
  if (e.tls === "untrusted")
    return trust
      ? error(
          "Untrusted agent certificate",
          `The agent's certificate at ${endpoint} is not signed by the CA given in ${trust.from} (${e.code}): set it to the cluster's ca.crt.`,
          [trust.attribute],
        )
      : error(
          "Untrusted agent certificate",
          `The agent's certificate at ${endpoint} is not signed by a CA this provider trusts (${e.code}): set ca_certificate, ca_file or HOLDFAST_CA to the cluster's ca.crt.`,
          ["endpoint"],
        );
  const fix =
    e.tls === "name"
      ? "reissue the node's certificate for the endpoint's host (holdfast cluster issue --address HOST), or use an endpoint it names"
      : "it has expired or is not valid yet: reissue the node's certificate (holdfast cluster issue)";
  return error("Invalid agent certificate", `${e.message}: ${fix}.`, ["endpoint"]);
}

/** The configured provider: the API client, and the signal StopProvider fires. */
export class HoldfastProvider implements ProviderContext {
  private configured?: HoldfastClient;
  private readonly stop = new AbortController();

  constructor(readonly logger: Logger) {}

  get stopSignal(): AbortSignal {
    return this.stop.signal;
  }

  client(): HoldfastClient | Diagnostic {
    return (
      this.configured ??
      error(
        "Provider not configured",
        "The holdfast provider was not configured; see the diagnostics before this one.",
      )
    );
  }

  /** Cancels every request in flight (Terraform's StopProvider, on Ctrl-C). */
  cancel(): void {
    this.stop.abort();
  }

  /**
   * Builds the API client, then asks the agent for its cluster once: a wrong token or an unreachable endpoint is
   * reported here, on the provider's attribute, instead of on every resource later.
   */
  async configure(config: ObjectValue): Promise<Diagnostic[]> {
    const diagnostics = validateProviderConfig(config);
    // Settings that come from resources of the same run (an endpoint from the nodes a stack creates) are unknown
    // while planning: stay unconfigured, which a plan of new volumes does not need; Terraform configures the
    // provider again, with known values, before it applies.
    if (Object.values(config).some(isUnknown)) {
      this.logger.debug("configuration not known yet; waiting for apply");
      return diagnostics;
    }
    const endpoint = setting(config, "endpoint", "HOLDFAST_API");
    const token = setting(config, "token", "HOLDFAST_TOKEN");
    if (!endpoint)
      diagnostics.push(
        error("Missing endpoint", "Set endpoint in the provider block, or HOLDFAST_API.", ["endpoint"]),
      );
    else if (!URL.canParse(endpoint))
      diagnostics.push(error("Invalid endpoint", `HOLDFAST_API "${endpoint}" is not a URL.`, ["endpoint"]));
    if (!token)
      diagnostics.push(
        error("Missing token", "Set token in the provider block, or HOLDFAST_TOKEN.", ["token"]),
      );
    const trust = await trustedCa(config, diagnostics);
    if (hasErrors(diagnostics) || !endpoint || !token) return diagnostics;
    const requestTimeoutMs = parseDuration(setting(config, "request_timeout") ?? DEFAULT_TIMEOUT) ?? 30_000;
    const maxRetries = typeof config.max_retries === "number" ? config.max_retries : DEFAULT_RETRIES;
    const client = new HoldfastClient({
      endpoint,
      token,
      ca: trust?.pem,
      requestTimeoutMs,
      maxRetries,
      logger: this.logger,
    });
    this.logger.debug("configuring", { endpoint, requestTimeoutMs, maxRetries, ca: trust?.from ?? null });
    try {
      await client.cluster(this.stop.signal);
    } catch (err) {
      const e = err as ApiError;
      if (e instanceof ApiError && e.status === 401)
        return [
          error("Token refused", `The agent at ${endpoint} refused the token: ${e.message}`, ["token"]),
        ];
      if (e instanceof ApiError && e.tls) return [certificateDiagnostic(endpoint, e, trust)];
      if (e instanceof ApiError && e.status === undefined)
        return [error("Cannot reach the Holdfast agent", e.message, ["endpoint"])];
      return [error("The Holdfast agent failed", e.message, ["endpoint"])];
    }
    this.configured = client;
    return [];
  }
}
