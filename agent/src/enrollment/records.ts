import { z } from "zod";
import { Name } from "../config/index.js";

/** Store keys of enrollment, under the cluster's root (`/holdfast/<cluster>`). */
export const enrollmentKeys = (root: string) => ({
  /** A node's pending certificate request. */
  csr: (node: string) => `${root}/csr/${node}`,
  csrs: `${root}/csr/`,
  /** The certificate last issued to a node, and the serials of its unexpired ones. */
  cert: (node: string) => `${root}/certs/${node}`,
  certs: `${root}/certs/`,
  /** A revoked serial: refused on every handshake until the certificate expires. */
  revoked: (serial: string) => `${root}/revoked/${serial}`,
  revokedAll: `${root}/revoked/`,
});

const Serial = z.string().regex(/^[0-9a-f]{2,64}$/, "must be lower-case hex");
const Pem = z.string().max(16_384);

/** How a node proves it may have a certificate for its id. */
export const ProofSchema = z.discriminatedUnion("kind", [
  /** First enrollment: the CSR signed by the key a one-time join token derives (enrollment/join-tokens.ts). */
  z.object({
    kind: z.literal("join-token"),
    tokenId: z.string().regex(/^[0-9a-f]{16}$/),
    signature: z.string().max(512),
  }),
  /** Renewal: the CSR signed by the key of the node's current certificate, which must be valid and not revoked. */
  z.object({ kind: z.literal("renewal"), cert: Pem, signature: z.string().max(512) }),
  /**
   * A cloud's identity document (on AWS, the instance identity document AWS signs), signed by a key the signer
   * trusts; the document names the instance, which must be the node.
   */
  z.object({
    kind: z.literal("identity-document"),
    document: z.string().max(8192),
    signature: z.string().max(2048),
  }),
]);
export type Proof = z.infer<typeof ProofSchema>;

/** A node's certificate request, at `csr/<node>`: written by the node, answered by the signer. */
export const CsrRecordSchema = z.object({
  node: Name,
  csr: Pem,
  /** Addresses the certificate should name (IPs or DNS names); the CSR must ask for exactly these. */
  addresses: z.array(z.string().max(253)).max(16),
  proof: ProofSchema,
  requestedAt: z.string().max(64),
  /** Set by the signer when it refuses the request: why. The node reports it and stops waiting. */
  refused: z.string().max(1024).optional(),
});
export type CsrRecord = z.infer<typeof CsrRecordSchema>;

/** What the signer issued a node, at `certs/<node>`. */
export const CertRecordSchema = z.object({
  node: Name,
  cert: Pem,
  ca: Pem,
  serial: Serial,
  notAfter: z.string().max(64),
  /** SHA-256 of the CSR this answers: a node takes only the answer to its own latest request. */
  csrHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** Every certificate of this node not yet expired (revoking the node revokes them all). */
  issued: z.array(z.object({ serial: Serial, notAfter: z.string().max(64) })).max(64),
});
export type CertRecord = z.infer<typeof CertRecordSchema>;

/** A revoked certificate, at `revoked/<serial>`. */
export const RevokedRecordSchema = z.object({
  serial: Serial,
  /** The node it was issued to, when the signer's records say. */
  node: Name.optional(),
  /** When the certificate expires, when known: after it, the record may go. */
  notAfter: z.string().max(64).optional(),
  /**
   * Revoked with its node (`cluster revoke --node`): every open connection of the node is cut, whichever of its
   * certificates opened it (one opened before a renewal may be with a certificate the signer no longer lists).
   */
  wholeNode: z.boolean().optional(),
  revokedAt: z.string().max(64),
});
export type RevokedRecord = z.infer<typeof RevokedRecordSchema>;
