import { createPublicKey, verify, X509Certificate } from "node:crypto";
import { z } from "zod";
import { ForbiddenError } from "../errors.js";
import { type Compare, type MetaStore, type Operation, readRecord } from "../meta/index.js";
import { NODE_URI_PREFIX, serialOf } from "../transport/index.js";
import { JoinTokenRecordSchema, joinTokenKey, joinTokenSigned } from "./join-tokens.js";
import { type CsrRecord, enrollmentKeys, type Proof } from "./records.js";

/** What a verifier needs to decide. */
export interface VerifyContext {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  /** The CA certificate (PEM): renewals must present a certificate it issued. */
  caPem: string;
  now: number;
}

/** What must commit in the transaction that issues the certificate, or nothing is issued (a token consumed, say). */
export interface Admission {
  compares: Compare[];
  operations: Operation[];
}

/**
 * One way a node may prove it is owed a certificate for its id. The signer picks the verifier by the proof's kind, so
 * a cloud's attestation plugs in beside join tokens. `check` rejects with a ForbiddenError saying why.
 */
export interface EnrollmentVerifier {
  readonly kind: Proof["kind"];
  check(request: CsrRecord, context: VerifyContext): Promise<Admission>;
}

const refuse = (reason: string) => new ForbiddenError("enrollment.refused", reason);

/** First enrollment with a one-time join token: it must exist (so not used yet), be unexpired and be for this node. */
export class JoinTokenVerifier implements EnrollmentVerifier {
  readonly kind = "join-token" as const;

  async check(request: CsrRecord, { store, root, now }: VerifyContext): Promise<Admission> {
    const proof = request.proof as Extract<Proof, { kind: "join-token" }>;
    const entry = await store.get(joinTokenKey(root, proof.tokenId));
    if (!entry) throw refuse(`join token ${proof.tokenId} is unknown or already used`);
    const token = readRecord(JoinTokenRecordSchema, entry);
    if (token.id !== proof.tokenId) throw refuse(`join token ${proof.tokenId} is filed under another id`);
    if (Date.parse(token.expiresAt) <= now)
      throw refuse(`join token ${token.id} expired at ${token.expiresAt}`);
    if (token.node !== request.node)
      throw refuse(`join token ${token.id} is for node ${token.node}, not ${request.node}`);
    if (!joinTokenSigned(token, request.csr, proof.signature))
      throw refuse(`the request is not signed with join token ${token.id}`);
    // Used once: the certificate is issued only if the token is still there, at this revision, and it goes with it.
    return { compares: [{ key: entry.key, revision: entry.revision }], operations: [{ delete: entry.key }] };
  }
}

/** The node id a certificate's URI SAN names. */
function certNode(cert: X509Certificate): string | undefined {
  for (const entry of (cert.subjectAltName ?? "").split(", ")) {
    if (entry.startsWith(`URI:${NODE_URI_PREFIX}`)) return entry.slice(`URI:${NODE_URI_PREFIX}`.length);
  }
  return undefined;
}

/** Renewal: the request is signed by the key of the node's current certificate, issued by this CA, valid, not revoked. */
export class RenewalVerifier implements EnrollmentVerifier {
  readonly kind = "renewal" as const;

  async check(request: CsrRecord, { store, root, caPem, now }: VerifyContext): Promise<Admission> {
    const proof = request.proof as Extract<Proof, { kind: "renewal" }>;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(proof.cert);
    } catch {
      throw refuse("the renewal's certificate is not a PEM X.509 certificate");
    }
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
      throw refuse("the renewal's certificate is not from this cluster's CA");
    if (Date.parse(cert.validTo) <= now || Date.parse(cert.validFrom) > now)
      throw refuse(
        `the renewal's certificate is not valid now (until ${cert.validTo}): join again with a token`,
      );
    if (certNode(cert) !== request.node)
      throw refuse(`the renewal's certificate names node ${certNode(cert) ?? "(none)"}, not ${request.node}`);
    if (!verify("sha256", Buffer.from(request.csr), cert.publicKey, Buffer.from(proof.signature, "base64")))
      throw refuse("the renewal is not signed with the key of its certificate");
    const revoked = enrollmentKeys(root).revoked(serialOf(cert));
    if (await store.get(revoked))
      throw refuse(
        `certificate ${serialOf(cert)} is revoked: node ${request.node} must join again with a token`,
      );
    // And compared in the transaction that issues: a revocation landing between this check and the issue wins.
    return { compares: [{ key: revoked, revision: 0 }], operations: [] };
  }
}

/** The fields of an identity document the signer reads (AWS's has more; they are ignored). */
const IdentityDocument = z.object({ instanceId: z.string().min(1).max(64) }).passthrough();

/**
 * A cloud's identity document as proof: on AWS, the instance identity document, signed by AWS. The signer trusts
 * `publicKeyPem` (AWS's published certificate's key, per region) and takes the document's instance id as the node id
 * (the constructs name nodes so); each instance enrolls this way once (`identity-documents/<node>`), renewing with
 * its certificate afterwards, because any process on the instance can fetch the document.
 */
export class IdentityDocumentVerifier implements EnrollmentVerifier {
  readonly kind = "identity-document" as const;

  constructor(private readonly publicKeyPem: string) {}

  async check(request: CsrRecord, { store, root }: VerifyContext): Promise<Admission> {
    const proof = request.proof as Extract<Proof, { kind: "identity-document" }>;
    const used = `${root}/identity-documents/${request.node}`;
    if (await store.get(used))
      throw refuse(
        `node ${request.node} already enrolled with its identity document: renew, or join with a token`,
      );
    let signed = false;
    try {
      signed = verify(
        "sha256",
        Buffer.from(proof.document),
        createPublicKey(this.publicKeyPem),
        Buffer.from(proof.signature, "base64"),
      );
    } catch {
      signed = false;
    }
    if (!signed) throw refuse("the identity document is not signed by the key this signer trusts");
    let document: z.infer<typeof IdentityDocument>;
    try {
      document = IdentityDocument.parse(JSON.parse(proof.document));
    } catch {
      throw refuse("the identity document is not JSON with an instanceId");
    }
    if (document.instanceId !== request.node)
      throw refuse(`the identity document is instance ${document.instanceId}'s, not node ${request.node}'s`);
    return {
      compares: [{ key: used, revision: 0 }],
      operations: [
        { put: used, value: JSON.stringify({ node: request.node, at: new Date().toISOString() }) },
      ],
    };
  }
}
