import { createPrivateKey, X509Certificate } from "node:crypto";
import { lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CertificatePem } from "./tls-certificate.js";

/** The server side of go-plugin's AutoMTLS: our certificate and key (PEM), and the CERT field of the handshake. */
export interface ServerTls extends CertificatePem {
  /** The certificate's DER in base64 without `=` padding: go-plugin decodes it with RawStdEncoding. */
  handshakeCert: string;
  /** Whether the certificate came from the cache (no @peculiar/x509 loaded, no key made). */
  cached: boolean;
}

/** How long a cached certificate is used: long enough for one Terraform command's 2-5 provider starts. */
const VALID_MS = 3_600_000;
/** A certificate this close to its end is made anew, so one never expires during a command's handshakes. */
const MARGIN_MS = 300_000;

/**
 * Where the certificate is kept between the provider processes of one Terraform command: the user's runtime
 * directory, else a per-user directory in the temp dir.
 */
function cacheDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  const uid = process.getuid?.() ?? "user";
  return runtime ? join(runtime, "holdfast-provider") : join(tmpdir(), `holdfast-provider-${uid}`);
}

/**
 * The cache directory, when it is ours alone: a directory (not a link) owned by this user, with no access for
 * others. Someone else may have made it first in a shared temp dir; then there is no cache.
 */
function privateDir(): string | undefined {
  const dir = cacheDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = lstatSync(dir);
    const ours =
      stat.isDirectory() && stat.uid === (process.getuid?.() ?? stat.uid) && (stat.mode & 0o077) === 0;
    return ours ? dir : undefined;
  } catch {
    return undefined;
  }
}

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
 * costs about 150 ms of start-up, so one is kept for an hour in a user-only directory (files 0600) and shared by
 * those processes. It is only the server key of a loopback-only plugin socket, which a client trusts because the
 * handshake line names the certificate, and it is readable by the same user who can read Terraform's own state.
 */
export async function serverTls(): Promise<ServerTls> {
  const dir = privateDir();
  const file = dir && join(dir, "server-tls.json");
  const cached = file ? readCached(file) : undefined;
  if (cached) return cached;
  const { selfSignedCertificate } = await import("./tls-certificate.js");
  const pem = await selfSignedCertificate(VALID_MS);
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
