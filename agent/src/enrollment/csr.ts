import { webcrypto } from "node:crypto";
import { SpecError } from "../errors.js";
import {
  type ClusterCa,
  EC_KEY,
  exportKeyPem,
  generateKeys,
  loadX509,
  NODE_URI_PREFIX,
  type NodeCertificateOptions,
  nodeNames,
  SIGNING,
  signNodeCertificate,
} from "../transport/index.js";

/** A certificate request made on a node: the CSR (PEM, PKCS#10) and the private key that never leaves the node. */
export interface NodeCsr {
  csrPem: string;
  keyPem: string;
}

/** Makes a new P-256 key pair and a CSR naming `holdfast://node/<nodeId>` and the node's addresses. */
export async function createNodeCsr(options: { nodeId: string; addresses: string[] }): Promise<NodeCsr> {
  const x509 = await loadX509();
  const names = nodeNames(options.nodeId, options.addresses);
  const keys = await generateKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [options.nodeId] }, { O: ["holdfast"] }],
    keys,
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  return { csrPem: csr.toString("pem"), keyPem: await exportKeyPem(keys.privateKey) };
}

/** The names a CSR asks for, as "type:value" strings, sorted: compared with the names the signer allows. */
function requested(
  x509: Awaited<ReturnType<typeof loadX509>>,
  csr: InstanceType<typeof x509.Pkcs10CertificateRequest>,
) {
  const san = csr.getExtension("2.5.29.17");
  if (!san) return [];
  const ext = new x509.SubjectAlternativeNameExtension(san.rawData);
  return ext.names.toJSON().map((n) => `${n.type}:${n.value}`);
}

/**
 * Signs a node's CSR with the cluster CA. The CSR must be signed by its own key (proof the requester holds it) and
 * ask for exactly the names of `nodeId` at `addresses`: a node that asks for another's id, or a name the signer did
 * not grant, gets nothing. The certificate says only what the signer decided (`options`), not what the CSR says.
 */
export async function signNodeCsr(
  ca: ClusterCa,
  csrPem: string,
  options: NodeCertificateOptions,
): Promise<string> {
  const x509 = await loadX509();
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new SpecError("csr", `is not a PEM PKCS#10 certificate request (${(err as Error).message})`);
  }
  if (!(await csr.verify())) throw new SpecError("csr", "its signature does not verify with its own key");
  const allowed = nodeNames(options.nodeId, options.addresses)
    .map((n) => `${n.type}:${n.value}`)
    .sort();
  const asked = requested(x509, csr).sort();
  const foreign = asked.filter((n) => !allowed.includes(n));
  if (foreign.length > 0 || !asked.includes(`url:${NODE_URI_PREFIX}${options.nodeId}`)) {
    throw new SpecError(
      "csr",
      `must name node ${options.nodeId} and only its addresses (${allowed.join(", ")}), asks for ${asked.join(", ") || "nothing"}`,
    );
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await webcrypto.subtle.importKey("spki", csr.publicKey.rawData, EC_KEY, true, ["verify"]);
  } catch {
    throw new SpecError("csr", "its key must be ECDSA P-256");
  }
  return signNodeCertificate(ca, publicKey, options);
}
