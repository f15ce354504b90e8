import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { splitHostPort } from "../config/index.js";
import { SpecError } from "../errors.js";
import { loadIdentity, type NodeIdentity } from "../transport/index.js";

/** How the REST API listens: where, the URL it is advertised by, and the certificate when it serves HTTPS. */
export interface ApiTransport {
  host: string;
  port: number;
  /** `https://HOST:PORT` with a certificate, `http://HOST:PORT` without: what the node record and agent.json say. */
  url: string;
  /** Fastify's `https` option: the node's cluster certificate and key. No client certificate: tokens authenticate. */
  https?: { cert: string; key: string; minVersion: "TLSv1.2" };
}

/** A loopback address: what is sent to it never leaves the host, so a token in clear there is no worse than on disk. */
export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/**
 * The API's transport (docs/decisions/0010-trust-boundary.md, "The API over TLS"): HTTPS whenever the node has a
 * cluster certificate, on any address, loopback too, so that one node's URL never changes scheme with its address.
 * Without one, plain HTTP on a loopback address, or anywhere with `apiPlainHttp` (a lab, warned about); otherwise
 * the agent refuses to start rather than send tokens in clear.
 *
 * `identity` is the certificate the replication port already loaded; a node of a local store has none loaded, and
 * its API uses the one in `tlsDir` all the same.
 */
export async function apiTransport(
  config: { api: string; apiPlainHttp: boolean; tlsDir: string },
  identity: NodeIdentity | undefined,
  logger: Logger,
): Promise<ApiTransport> {
  const { host, port } = splitHostPort(config.api);
  const tls =
    identity ?? (existsSync(join(config.tlsDir, "node.crt")) ? await loadIdentity(config.tlsDir) : undefined);
  if (tls) {
    warnIfNotNamed(tls.certPem, host, logger);
    return {
      host,
      port,
      url: `https://${config.api}`,
      https: { cert: tls.certPem, key: tls.keyPem, minVersion: "TLSv1.2" },
    };
  }
  if (!isLoopback(host)) {
    if (!config.apiPlainHttp)
      throw new SpecError(
        "api",
        `${config.api} is not a loopback address and this node has no cluster certificate in ${config.tlsDir}: ` +
          "issue one with 'holdfast cluster issue --address HOST' (the API then serves HTTPS), listen on 127.0.0.1, " +
          "or set apiPlainHttp (--api-plain-http) for a lab where tokens may cross the network in clear",
      );
    logger.warn(
      { api: config.api },
      "the API serves plain HTTP on a non-loopback address (apiPlainHttp): a lab, tokens cross the network in clear",
    );
  }
  return { host, port, url: `http://${config.api}` };
}

/** Clients check the API's host against the certificate: one that does not name it is refused by all of them. */
function warnIfNotNamed(certPem: string, host: string, logger: Logger): void {
  const cert = new X509Certificate(certPem);
  const named = isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
  // A wildcard address is reached by the node's own addresses, which the certificate is issued for.
  if (!named && host !== "0.0.0.0" && host !== "::")
    logger.warn(
      { api: host, subjectAltName: cert.subjectAltName },
      "the node certificate does not name the API's host: clients will refuse it; reissue it with --address",
    );
}
