import type { MetaStore } from "../meta/index.js";
import { type ClusterCa, type NodeIdentity, saveIdentity } from "../transport/index.js";
import { createJoinToken } from "./join-tokens.js";
import { requestCertificate, withJoinToken } from "./request.js";
import { signPending } from "./signer.js";

/**
 * Enrolls a node through the signer's own path, where the CA is at hand (`holdfast dev up`): a join token for it,
 * the node's request, a signer pass, the identity saved to `tlsDir`. The key is made for the node, the token used
 * once, and the certificate recorded in `certs/<node>` like any other, so `cluster revoke --node` and renewal work on
 * it (renewal needs a signer running: `holdfast cluster sign --watch`).
 */
export async function enrollWithCa(options: {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  ca: ClusterCa;
  nodeId: string;
  addresses: string[];
  tlsDir: string;
  /** @default 7 */
  validDays?: number;
}): Promise<NodeIdentity> {
  const { store, root, ca, nodeId } = options;
  const { token } = await createJoinToken(store, root, { node: nodeId, ttlSeconds: 300 });
  const asked = requestCertificate({
    store,
    root,
    nodeId,
    addresses: options.addresses,
    proof: withJoinToken(token),
    pollMs: 20,
    timeoutMs: 30_000,
  });
  // The request is in the store once the node's first write lands: sign until it is answered.
  let answered = false;
  const identity = asked.finally(() => {
    answered = true;
  });
  identity.catch(() => undefined);
  while (!answered) {
    await signPending({ store, root, ca, validDays: options.validDays, report: () => undefined });
    await new Promise((r) => setTimeout(r, 20));
  }
  const result = await identity;
  await saveIdentity(options.tlsDir, result);
  return result;
}
