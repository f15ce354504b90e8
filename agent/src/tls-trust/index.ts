/**
 * What a failed TLS connection to an agent's API means, for the CLI and the provider to say in words: the codes
 * Node's TLS client gives when it does not trust, or cannot match, the server's certificate.
 */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
]);

export type TlsProblem = "untrusted" | "name" | "expired";

/** The kind of certificate problem a connection error code stands for, or undefined when it is not one. */
export function tlsProblem(code: string | undefined): TlsProblem | undefined {
  if (code === undefined) return undefined;
  if (UNTRUSTED.has(code)) return "untrusted";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return "name";
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return "expired";
  return undefined;
}

/** A hint for a connection cut before any answer: the scheme does not match what the agent serves. */
export function schemeHint(url: string, code: string | undefined): string {
  if (url.startsWith("http:") && (code === "ECONNRESET" || code === "EPIPE"))
    return " (an agent with a cluster certificate serves only https: use https://)";
  if (url.startsWith("https:") && code === "EPROTO")
    return " (the agent answered without TLS: it has no cluster certificate, use http:// on loopback)";
  return "";
}
