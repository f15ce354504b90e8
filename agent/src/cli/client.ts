import { readFileSync } from "node:fs";
import got, { type Got, HTTPError, RequestError } from "got";
import { HoldfastError, InputError, OperationError, SpecError } from "../errors.js";
import { schemeHint, tlsProblem } from "../tls-trust/index.js";

/** Where the CLI finds the agent: `HOLDFAST_API`, `HOLDFAST_TOKEN` and `HOLDFAST_CA` (or `--ca`). */
export interface ClientOptions {
  /** Agent API URL. @default "http://127.0.0.1:9001" */
  url?: string;
  /** Bearer token. @default - none: requests are refused with a message saying so */
  token?: string;
  /** PEM file of the CA an https agent's certificate must be signed by: the cluster's ca.crt. @default - Node's trusted roots (its bundled list, NODE_EXTRA_CA_CERTS) */
  caFile?: string;
}

/** Reads the CA file once per client; one that cannot be read is bad input naming where it came from. */
function readCa(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new SpecError(
      "ca",
      `cannot read the CA file ${file} (--ca or HOLDFAST_CA): ${(err as NodeJS.ErrnoException).code}`,
    );
  }
}

/** The REST API as the CLI uses it; API errors come back as HoldfastErrors with the API's code and field. */
export class ApiClient {
  private readonly http: Got;
  private readonly url: string;

  constructor(private readonly options: ClientOptions = {}) {
    const url = (options.url ?? "http://127.0.0.1:9001").replace(/\/+$/, "");
    this.url = url;
    this.http = got.extend({
      prefixUrl: `${url}/v1`,
      // Node's rule: a CA given replaces its trusted roots, so only the cluster's certificates pass.
      https: options.caFile ? { certificateAuthority: readCa(options.caFile) } : {},
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      responseType: "json",
      retry: { limit: 0 },
      timeout: { request: 10 * 60 * 1000 },
    });
  }

  /** The same client (token and CA), talking to another node's agent. */
  at(url: string): ApiClient {
    return new ApiClient({ ...this.options, url });
  }

  /** The client of node `nodeId`'s agent (from the cluster's node list). */
  async node(nodeId: string): Promise<ApiClient> {
    const nodes = await this.request<Array<{ id: string; api: string; state: string }>>("GET", "nodes");
    const node = nodes.find((n) => n.id === nodeId);
    if (!node) {
      throw new SpecError(
        "node",
        `no node "${nodeId}" in the cluster (${nodes.map((n) => n.id).join(", ")})`,
      );
    }
    return this.at(node.api);
  }

  async request<T>(method: "GET" | "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
    try {
      const res = await this.http<T>(path, { method, ...(body === undefined ? {} : { json: body }) });
      return res.body;
    } catch (err) {
      throw toHoldfastError(err, this.url, this.options.caFile);
    }
  }
}

function toHoldfastError(err: unknown, url: string, caFile: string | undefined): HoldfastError {
  if (err instanceof HTTPError) {
    const body = err.response.body as
      | { error?: { code?: string; message?: string; field?: string } }
      | undefined;
    const e = body?.error;
    const code = e?.code ?? "http.error";
    const message = e?.message ?? err.message;
    // A 400 is the caller's input again on this side, so the CLI exits 2 for it as for input it refused itself.
    if (err.response.statusCode === 400) return new InputError(code, message, e?.field);
    return new HoldfastError(code, message, { field: e?.field });
  }
  if (err instanceof RequestError) {
    const problem = tlsProblem(err.code);
    if (problem === "untrusted")
      return new OperationError(
        "api.untrusted",
        caFile
          ? `the agent at ${url} has a certificate not signed by the CA in ${caFile} (${err.code}): set HOLDFAST_CA (or --ca) to the cluster's ca.crt`
          : `the agent at ${url} has a certificate no CA this CLI trusts has signed (${err.code}; no HOLDFAST_CA given, so Node's own roots): set HOLDFAST_CA (or --ca) to the cluster's ca.crt`,
      );
    if (problem)
      return new OperationError(
        "api.untrusted",
        `the agent's certificate at ${url} is not valid: ${err.message} (${problem === "name" ? "reissue it with 'holdfast cluster issue --address' for this host" : "reissue it with 'holdfast cluster issue'"})`,
      );
    return new OperationError(
      "api.unreachable",
      `cannot reach the agent at ${url}: ${err.code}${schemeHint(url, err.code)} (is it running? set HOLDFAST_API)`,
    );
  }
  return new OperationError("client", String(err), err);
}
