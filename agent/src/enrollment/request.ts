import { createPrivateKey, sign } from "node:crypto";
import { OperationError } from "../errors.js";
import { type MetaStore, readRecord } from "../meta/index.js";
import type { NodeIdentity } from "../transport/index.js";
import { createNodeCsr } from "./csr.js";
import { joinTokenProof } from "./join-tokens.js";
import { CertRecordSchema, CsrRecordSchema, enrollmentKeys, type Proof } from "./records.js";
import { csrHash } from "./signer.js";

export interface CertificateRequestOptions {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  nodeId: string;
  /** IPs and DNS names the certificate names. */
  addresses: string[];
  /** How this node proves it is owed the certificate, given the CSR it signs over. */
  proof: (csrPem: string) => Proof;
  /** How long to wait for the signer. @default 600000 (10 minutes) */
  timeoutMs?: number;
  /** How often to look for the answer. @default 500 */
  pollMs?: number;
  /** Stops the wait (the agent is stopping): the request rejects with `enrollment.aborted`. */
  signal?: AbortSignal;
}

/**
 * The node's side of enrollment: a new key pair and CSR, written with its proof to `csr/<node>`; then it waits for
 * the signer's certificate for that CSR (`certs/<node>`, matched by the CSR's hash) or its refusal. The key never
 * leaves this process; the caller saves the identity.
 */
export async function requestCertificate(options: CertificateRequestOptions): Promise<NodeIdentity> {
  const { store, root, nodeId } = options;
  const keys = enrollmentKeys(root);
  const { csrPem, keyPem } = await createNodeCsr({ nodeId, addresses: options.addresses });
  const request = CsrRecordSchema.parse({
    node: nodeId,
    csr: csrPem,
    addresses: options.addresses,
    proof: options.proof(csrPem),
    requestedAt: new Date().toISOString(),
  });
  await store.commit([], [{ put: keys.csr(nodeId), value: JSON.stringify(request) }]);
  const hash = csrHash(csrPem);
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  for (;;) {
    if (options.signal?.aborted)
      throw new OperationError("enrollment.aborted", `node ${nodeId}'s certificate request was given up`);
    // The request first, then the certificate: the signer deletes the one and writes the other in one transaction,
    // so a request gone means its answer is there.
    const pending = await store.get(keys.csr(nodeId));
    if (pending) {
      const record = readRecord(CsrRecordSchema, pending);
      if (record.csr !== csrPem)
        throw new OperationError(
          "enrollment.superseded",
          `another request for node ${nodeId} replaced this one`,
        );
      if (record.refused !== undefined)
        throw new OperationError(
          "enrollment.refused",
          `the signer refused node ${nodeId}'s certificate: ${record.refused}`,
        );
    }
    const cert = await store.get(keys.cert(nodeId));
    const record = cert ? readRecord(CertRecordSchema, cert) : undefined;
    if (record && record.csrHash === hash && record.node === nodeId)
      return { certPem: record.cert, keyPem, caPem: record.ca };
    if (!pending)
      throw new OperationError("enrollment.lost", `node ${nodeId}'s request went without an answer`);
    if (Date.now() > deadline)
      throw new OperationError(
        "enrollment.timeout",
        `no signer answered node ${nodeId}'s certificate request within ${options.timeoutMs ?? 600_000} ms: is 'holdfast cluster sign' running?`,
      );
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}

/** Proof for a first enrollment: the join token (value as `holdfast cluster join-token create` printed it). */
export const withJoinToken =
  (token: string) =>
  (csrPem: string): Proof =>
    joinTokenProof(token, csrPem);

/** Proof for a renewal: the CSR signed by the current identity's key. */
export const withCurrentIdentity =
  (identity: NodeIdentity) =>
  (csrPem: string): Proof => ({
    kind: "renewal",
    cert: identity.certPem,
    signature: sign("sha256", Buffer.from(csrPem), createPrivateKey(identity.keyPem)).toString("base64"),
  });
