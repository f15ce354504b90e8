/**
 * The cluster CA: `holdfast cluster init` creates a certificate authority, every node gets a certificate
 * signed by it, and the replication port speaks mutual TLS with those certificates, so a connection without
 * a valid certificate from the same cluster is refused.
 *
 * Keys are ECDSA P-256, stored as PKCS#8 PEM. A node certificate names its node id twice: as the subject
 * CN and as a URI SAN `holdfast://node/<id>`. The URI SAN is the authoritative one: {@link peerNodeId}
 * reads only it (a CN is free-form text in many CAs, a URI SAN with our scheme is not).
 */
import {
  createPrivateKey,
  X509Certificate as NodeX509Certificate,
  randomBytes,
  webcrypto,
} from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import type { ConnectionOptions, PeerCertificate, TLSSocket, TlsOptions } from "node:tls";
import type * as X509 from "@peculiar/x509";
import { OperationError, SpecError } from "../errors.js";
import { isName, NAME_RULE } from "../names.js";

/** A cluster's certificate authority: the CA cert (PEM) and its private key (PEM, PKCS#8). */
export interface ClusterCa {
  certPem: string;
  keyPem: string;
}

/** One node's identity: its cert (PEM, signed by the CA) and key, and the CA cert to verify peers with. */
export interface NodeIdentity {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** The URI SAN prefix that carries a node id in a node certificate. */
export const NODE_URI_PREFIX = "holdfast://node/";

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DAY_MS = 86_400_000;
/** Certificates start a little in the past, so a peer whose clock lags slightly still accepts them. */
const CLOCK_SKEW_MS = 5 * 60_000;
export const EC_KEY = { name: "ECDSA", namedCurve: "P-256" } as const;
export const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

const CA_CERT = "ca.crt";
const CA_KEY = "ca.key";
const NODE_CERT = "node.crt";
const NODE_KEY = "node.key";

let x509Module: Promise<typeof X509> | undefined;

/**
 * Loads `@peculiar/x509` on first use, so that agents and CLI commands that never touch certificates do not pay
 * for it at start-up. It resolves its algorithms through tsyringe, which needs the Reflect metadata API
 * (`reflect-metadata`) loaded before it.
 */
export function loadX509(): Promise<typeof X509> {
  x509Module ??= (async () => {
    await import("reflect-metadata");
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return x509Module;
}

function checkName(field: string, value: string): void {
  if (!isName(value)) throw new SpecError(field, `must be ${NAME_RULE}`);
}

function validity(
  field: string,
  validDays: number,
  override: { notBefore?: Date; notAfter?: Date },
): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(validDays) || validDays <= 0)
    throw new SpecError(field, "must be a positive number of days");
  const now = Date.now();
  // A short-lived certificate is backdated by a tenth of its life at most: its renewal, due when a third is left,
  // must not be due at once.
  const skew = Math.min(CLOCK_SKEW_MS, (validDays * DAY_MS) / 10);
  const notBefore = override.notBefore ?? new Date(now - skew);
  const notAfter = override.notAfter ?? new Date(now + validDays * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) throw new SpecError("notAfter", "must be after notBefore");
  return { notBefore, notAfter };
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40; // positive, and always 16 bytes long
  return bytes.toString("hex");
}

export async function exportKeyPem(key: CryptoKey): Promise<string> {
  const x509 = await loadX509();
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

export function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

/** Creates a new cluster CA: a self-signed ECDSA P-256 certificate allowed to sign node certificates only. */
export async function createClusterCa(options: {
  cluster: string;
  /** @default 3650 (10 years) */
  validDays?: number;
}): Promise<ClusterCa> {
  checkName("cluster", options.cluster);
  const x509 = await loadX509();
  const { notBefore, notAfter } = validity("validDays", options.validDays ?? 3650, {});
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [
      { CN: [`Holdfast cluster CA ${options.cluster}`] },
      { O: ["holdfast"] },
      { OU: [options.cluster] },
    ],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportKeyPem(keys.privateKey) };
}

function parseCert(x509: typeof X509, pem: string, what: string): X509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (err) {
    throw new SpecError(what, `is not a PEM X.509 certificate (${(err as Error).message})`);
  }
}

async function importCaKey(keyPem: string): Promise<CryptoKey> {
  try {
    const der = createPrivateKey(keyPem).export({ format: "der", type: "pkcs8" });
    return await webcrypto.subtle.importKey("pkcs8", der, EC_KEY, false, ["sign"]);
  } catch (err) {
    throw new SpecError("ca.keyPem", `is not an ECDSA P-256 private key (${(err as Error).message})`);
  }
}

/** What a node certificate says: who it names, where it is reached, how long it is valid. */
export interface NodeCertificateOptions {
  nodeId: string;
  /** IPs and DNS names the node is reached at */
  addresses: string[];
  /**
   * Days the certificate is valid (fractions allowed: tests use seconds' worth). Short, because the agent renews it
   * (enrollment/renewal.ts) and a stolen key is worth little once it expires.
   * @default 7
   */
  validDays?: number;
  notBefore?: Date;
  notAfter?: Date;
}

/** The default life of a node certificate, in days: the agent renews it when a third is left. */
export const NODE_CERT_DAYS = 7;

/** The SANs of a node certificate: the node's URI, then each address as an IP or DNS name. */
export function nodeNames(nodeId: string, addresses: string[]): X509.JsonGeneralName[] {
  checkName("nodeId", nodeId);
  const names: X509.JsonGeneralName[] = [{ type: "url", value: `${NODE_URI_PREFIX}${nodeId}` }];
  for (const [i, address] of addresses.entries()) {
    if (isIP(address)) names.push({ type: "ip", value: address });
    else if (DNS_NAME.test(address)) names.push({ type: "dns", value: address });
    else throw new SpecError(`addresses[${i}]`, `"${address}" is neither an IP address nor a DNS name`);
  }
  return names;
}

/**
 * Signs a node certificate for `publicKey` with the cluster CA: the one issuing path, used by
 * {@link issueNodeIdentity} (key made here) and by the signer of enrollment requests (key made on the node).
 * Usable as both TLS server and client certificate; names the node id as CN and as the URI SAN
 * `holdfast://node/<nodeId>`, and each address as an IP or DNS SAN.
 */
export async function signNodeCertificate(
  ca: ClusterCa,
  publicKey: CryptoKey,
  options: NodeCertificateOptions,
): Promise<string> {
  const x509 = await loadX509();
  const names = nodeNames(options.nodeId, options.addresses);
  const { notBefore, notAfter } = validity("validDays", options.validDays ?? NODE_CERT_DAYS, options);
  const caCert = parseCert(x509, ca.certPem, "ca.certPem");
  const caKey = await importCaKey(ca.keyPem);
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [options.nodeId] }, { O: ["holdfast"] }],
    issuer: caCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(names),
      caKeyId
        ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  // Signed with the CA key but not issued by the CA cert means the pair does not match: refuse it now
  // rather than hand out a certificate no peer will accept.
  const issued = new NodeX509Certificate(cert.toString("pem"));
  if (!issued.verify(new NodeX509Certificate(ca.certPem).publicKey)) {
    throw new SpecError("ca.keyPem", "is not the private key of ca.certPem");
  }
  return cert.toString("pem");
}

/**
 * Issues a node identity straight from the CA: a key pair made here and its certificate. For the operator's
 * `holdfast cluster issue` and `holdfast dev up`, where the CA key is at hand; nodes enroll with a CSR instead
 * (enrollment/). `notBefore`/`notAfter` override the validity window (tests use them to make an expired cert).
 */
export async function issueNodeIdentity(
  ca: ClusterCa,
  options: NodeCertificateOptions,
): Promise<NodeIdentity> {
  const keys = await generateKeys();
  const certPem = await signNodeCertificate(ca, keys.publicKey, options);
  return { certPem, keyPem: await exportKeyPem(keys.privateKey), caPem: ca.certPem };
}

/**
 * TLS options for the replication server: TLS 1.3, requires a client certificate and rejects any not
 * signed by the cluster CA. To restrict which nodes may connect, check `peerNodeId` (or
 * {@link verifiedPeerNodeId}) on the accepted socket.
 */
export function serverTlsOptions(identity: NodeIdentity): TlsOptions {
  return {
    cert: identity.certPem,
    key: identity.keyPem,
    ca: identity.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
  };
}

/**
 * TLS options for connecting to a peer node: presents this node's certificate, verifies the server's
 * against the cluster CA, and requires it to name `expectedNodeId` (instead of the host name: peers are
 * reached by IP as often as by name, and the node id is what we mean to reach).
 */
export function clientTlsOptions(
  identity: NodeIdentity,
  expectedNodeId: string,
  /** Whether a serial is revoked (the list as last read): a server presenting one is refused. */
  revoked: (serial: string) => boolean = () => false,
): ConnectionOptions {
  checkName("expectedNodeId", expectedNodeId);
  return {
    cert: identity.certPem,
    key: identity.keyPem,
    ca: identity.caPem,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
    checkServerIdentity: (_host, cert) => {
      const found = peerNodeId(cert);
      if (found === expectedNodeId && revoked(serialOf(cert))) {
        return new OperationError(
          "transport.peer_revoked",
          `node "${found}" presents certificate ${serialOf(cert)}, which is revoked`,
        );
      }
      if (found === expectedNodeId) return undefined;
      return new OperationError(
        "transport.peer_mismatch",
        `peer certificate names node ${found === undefined ? "(none)" : `"${found}"`}, expected node "${expectedNodeId}"`,
      );
    },
  };
}

/**
 * The node id a peer certificate names: the `holdfast://node/<id>` URI SAN (the CN is ignored). Only
 * meaningful on a certificate TLS has verified against the cluster CA.
 */
export function peerNodeId(cert: PeerCertificate): string | undefined {
  const san = cert?.subjectaltname;
  if (!san) return undefined;
  for (const entry of san.split(", ")) {
    if (!entry.startsWith(`URI:${NODE_URI_PREFIX}`)) continue;
    const id = entry.slice(`URI:${NODE_URI_PREFIX}`.length);
    if (isName(id)) return id;
  }
  return undefined;
}

/** A certificate's serial number as lower-case hex, the form revocation records are filed under. */
export function serialOf(cert: { serialNumber: string }): string {
  return cert.serialNumber.toLowerCase();
}

/** The serial and expiry of a PEM certificate. */
export function certificateFacts(pem: string): { serial: string; notBefore: Date; notAfter: Date } {
  const cert = new NodeX509Certificate(pem);
  return { serial: serialOf(cert), notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** The node id of an authorized TLS peer, or undefined when the peer is unverified or names none. */
export function verifiedPeerNodeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return peerNodeId(socket.getPeerCertificate());
}

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (err) {
    throw new OperationError(
      "transport.save_failed",
      `${file}: cannot write (${(err as Error).message})`,
      err,
    );
  }
}

async function readPem(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : `cannot read (${(err as Error).message})`;
    throw new OperationError("transport.load_failed", `${file}: ${why}`, err);
  }
}

function corrupt(file: string, what: string, err?: unknown): OperationError {
  const detail = err instanceof Error ? ` (${err.message})` : "";
  return new OperationError("transport.load_failed", `${file}: ${what}${detail}`, err);
}

async function readCert(file: string): Promise<{ pem: string; cert: NodeX509Certificate }> {
  const pem = await readPem(file);
  try {
    return { pem, cert: new NodeX509Certificate(pem) };
  } catch (err) {
    throw corrupt(file, "is not a PEM X.509 certificate", err);
  }
}

async function readKey(file: string, cert: NodeX509Certificate, certFile: string): Promise<string> {
  const pem = await readPem(file);
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(pem));
  } catch (err) {
    throw corrupt(file, "is not a PEM private key", err);
  }
  if (!matches) throw corrupt(file, `is not the private key of ${certFile}`);
  return pem;
}

/** Writes a node identity to `dir` as node.crt, node.key (mode 0600) and ca.crt. */
export async function saveIdentity(dir: string, identity: NodeIdentity): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeAtomic(join(dir, CA_CERT), identity.caPem, 0o644);
  await writeAtomic(join(dir, NODE_CERT), identity.certPem, 0o644);
  await writeAtomic(join(dir, NODE_KEY), identity.keyPem, 0o600);
}

/** Reads a node identity saved by {@link saveIdentity}, checking the key matches and the CA issued the cert. */
export async function loadIdentity(dir: string): Promise<NodeIdentity> {
  const caFile = join(dir, CA_CERT);
  const certFile = join(dir, NODE_CERT);
  const keyFile = join(dir, NODE_KEY);
  const ca = await readCert(caFile);
  const node = await readCert(certFile);
  const keyPem = await readKey(keyFile, node.cert, certFile);
  if (!node.cert.checkIssued(ca.cert) || !node.cert.verify(ca.cert.publicKey)) {
    throw corrupt(certFile, `is not signed by ${caFile}`);
  }
  return { certPem: node.pem, keyPem, caPem: ca.pem };
}

/** Writes a cluster CA to `dir` as ca.crt and ca.key (mode 0600). */
export async function saveCa(dir: string, ca: ClusterCa): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeAtomic(join(dir, CA_CERT), ca.certPem, 0o644);
  await writeAtomic(join(dir, CA_KEY), ca.keyPem, 0o600);
}

/** Reads a cluster CA saved by {@link saveCa}, checking the key matches the certificate. */
export async function loadCa(dir: string): Promise<ClusterCa> {
  const certFile = join(dir, CA_CERT);
  const ca = await readCert(certFile);
  if (!ca.cert.ca) throw corrupt(certFile, "is not a CA certificate");
  const keyPem = await readKey(join(dir, CA_KEY), ca.cert, certFile);
  return { certPem: ca.pem, keyPem };
}
