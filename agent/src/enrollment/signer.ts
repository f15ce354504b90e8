import { createHash } from "node:crypto";
import { HoldfastError } from "../errors.js";
import { type BadRecordError, filedUnder, type MetaStore, readRecord, readRecords } from "../meta/index.js";
import { type ClusterCa, certificateFacts, NODE_CERT_DAYS } from "../transport/index.js";
import { signNodeCsr } from "./csr.js";
import {
  type CertRecord,
  CertRecordSchema,
  type CsrRecord,
  CsrRecordSchema,
  enrollmentKeys,
} from "./records.js";
import { type EnrollmentVerifier, JoinTokenVerifier, RenewalVerifier } from "./verifiers.js";

/** What the signer did with one request. */
export type SignOutcome =
  | { node: string; signed: string; notAfter: string; proof: string }
  | { node: string; refused: string };

export interface SignerOptions {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  ca: ClusterCa;
  /** The proofs taken. @default join tokens and renewals */
  verifiers?: EnrollmentVerifier[];
  /** Days each certificate is valid (fractions allowed). @default 7 */
  validDays?: number;
  report: (err: BadRecordError) => void;
}

export const csrHash = (csrPem: string) => createHash("sha256").update(csrPem).digest("hex");

/**
 * The signer: the one place the CA key is used after `cluster init` (the operator's `holdfast cluster sign`, or a
 * loop on designated hosts). One pass answers every pending request: it checks the proof with the verifier of its
 * kind, signs the CSR, and in one transaction writes the certificate, deletes the request and consumes what the proof
 * used (a join token), each compared on its revision, so two signers or two uses of one token issue once.
 */
export async function signPending(options: SignerOptions): Promise<SignOutcome[]> {
  const { store, root, ca, report } = options;
  const keys = enrollmentKeys(root);
  const verifiers = options.verifiers ?? [new JoinTokenVerifier(), new RenewalVerifier()];
  const entries = await store.list(keys.csrs);
  const revisions = new Map(entries.map((e) => [e.key, e.revision]));
  const requests = readRecords(
    CsrRecordSchema,
    entries,
    report,
    filedUnder(keys.csrs, "node", (r: CsrRecord) => r.node),
  );
  const outcomes: SignOutcome[] = [];
  for (const request of requests) {
    if (request.refused !== undefined) continue;
    const key = keys.csr(request.node);
    const revision = revisions.get(key) ?? 0;
    try {
      const verifier = verifiers.find((v) => v.kind === request.proof.kind);
      if (!verifier)
        throw new HoldfastError("enrollment.refused", `this signer takes no ${request.proof.kind} proofs`);
      const now = Date.now();
      const admission = await verifier.check(request, { store, root, caPem: ca.certPem, now });
      const certPem = await signNodeCsr(ca, request.csr, {
        nodeId: request.node,
        addresses: request.addresses,
        validDays: options.validDays ?? NODE_CERT_DAYS,
      });
      const facts = certificateFacts(certPem);
      const previous = await store.get(keys.cert(request.node));
      let issued: CertRecord["issued"] = [];
      if (previous) {
        try {
          issued = readRecord(CertRecordSchema, previous).issued.filter((c) => Date.parse(c.notAfter) > now);
        } catch (err) {
          report(err as BadRecordError);
        }
      }
      const record: CertRecord = {
        node: request.node,
        cert: certPem,
        ca: ca.certPem,
        serial: facts.serial,
        notAfter: facts.notAfter.toISOString(),
        csrHash: csrHash(request.csr),
        issued: [...issued.slice(-63), { serial: facts.serial, notAfter: facts.notAfter.toISOString() }],
      };
      const done = await store.commit(
        [
          { key, revision },
          { key: keys.cert(request.node), revision: previous?.revision ?? 0 },
          ...admission.compares,
        ],
        [
          { put: keys.cert(request.node), value: JSON.stringify(record) },
          { delete: key },
          ...admission.operations,
        ],
      );
      // Lost a race (another signer, a new request, the token used meanwhile): the next pass sees how it ended.
      if (done)
        outcomes.push({
          node: request.node,
          signed: facts.serial,
          notAfter: record.notAfter,
          proof: request.proof.kind,
        });
    } catch (err) {
      if (!(err instanceof HoldfastError)) throw err;
      const refused = err.message;
      await store.commit([{ key, revision }], [{ put: key, value: JSON.stringify({ ...request, refused }) }]);
      outcomes.push({ node: request.node, refused });
    }
  }
  return outcomes;
}
