export { createNodeCsr, type NodeCsr, signNodeCsr } from "./csr.js";
export { enrollWithCa } from "./enroll-with-ca.js";
export { joinCluster, readJoinToken } from "./join.js";
export {
  createJoinToken,
  JOIN_TOKEN_PREFIX,
  type JoinTokenRecord,
  joinTokenProof,
  parseJoinToken,
} from "./join-tokens.js";
export {
  type CertRecord,
  CertRecordSchema,
  type CsrRecord,
  enrollmentKeys,
  type Proof,
  type RevokedRecord,
} from "./records.js";
export { CertificateRenewer, type CertificateRenewerOptions, renewalDue } from "./renewal.js";
export {
  type CertificateRequestOptions,
  requestCertificate,
  withCurrentIdentity,
  withJoinToken,
} from "./request.js";
export { type RevocationCheck, RevocationList, revoke } from "./revocations.js";
export { csrHash, type SignerOptions, type SignOutcome, signPending } from "./signer.js";
export {
  type Admission,
  type EnrollmentVerifier,
  IdentityDocumentVerifier,
  JoinTokenVerifier,
  RenewalVerifier,
  type VerifyContext,
} from "./verifiers.js";
