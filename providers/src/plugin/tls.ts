import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { privateCacheDir } from "./cache-dir.js";
import { type CertificatePem, selfSignedCertificate } from "./tls-certificate.js";

/** The server side of go-plugin's AutoMTLS: our certificate and key (PEM), and the CERT field of the handshake. */
export interface ServerTls extends CertificatePem {
  /** The certificate's DER in base64 without `=` padding: go-plugin decodes it with RawStdEncoding. */
  handshakeCert: string;
  /** Whether the certificate came from the cache (no key made). */
  cached: boolean;
}

/** How long a cached certificate is used: long enough for one Terraform command's 2-5 provider starts. */
const VALID_MS = 3_600_000;
/** A certificate this close to its end is made anew, so one never expires during a command's handshakes. */
const MARGIN_MS = 300_000;

function withHandshake(pem: CertificatePem, cert: X509Certificate, cached: boolean): ServerTls {
  return { ...pem, handshakeCert: cert.raw.toString("base64").replace(/=+$/, ""), cached };
}

/** The cached certificate if it is readable, matches its key and is valid for a while yet. */
function readCached(file: string): ServerTls | undefined {
  try {
    const pem = JSON.parse(readFileSync(file, "utf8")) as CertificatePem;
    const cert = new X509Certificate(pem.certPem);
    const fresh = Date.parse(cert.validTo) - Date.now() > MARGIN_MS;
    return fresh && cert.checkPrivateKey(createPrivateKey(pem.keyPem))
      ? withHandshake(pem, cert, true)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The AutoMTLS server certificate. Terraform starts the provider 2-5 times per command and making a certificate
 * costs about 10 ms of start-up (3 ms to read one), so one is kept for an hour in a user-only directory (files 0600)
 * and shared by those processes. It is only the server key of a loopback-only plugin socket, which a client trusts because the
 * handshake line names the certificate, and it is readable by the same user who can read Terraform's own state.
 */
export async function serverTls(): Promise<ServerTls> {
  const dir = privateCacheDir();
  const file = dir && join(dir, "server-tls.json");
  const cached = file ? readCached(file) : undefined;
  if (cached) return cached;
  const pem = selfSignedCertificate(VALID_MS);
  if (file) {
    // Written beside and renamed into place: providers starting at the same moment never read half a file.
    const temp = `${file}.${process.pid}`;
    try {
      writeFileSync(temp, JSON.stringify(pem), { mode: 0o600 });
      renameSync(temp, file);
    } catch {
      // No cache this time; the certificate in hand works all the same.
      rmSync(temp, { force: true });
    }
  }
  return withHandshake(pem, new X509Certificate(pem.certPem), false);
}
