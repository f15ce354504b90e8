import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { SpecError } from "../errors.js";
import type { MetaStore } from "../meta/index.js";
import { certificateFacts, type NodeIdentity, saveIdentity } from "../transport/cluster-ca.js";
import { JOIN_TOKEN_PREFIX, parseJoinToken } from "./join-tokens.js";
import { requestCertificate, withJoinToken } from "./request.js";

/** The join token a setting gives: the token itself (`hfj1.…`), or the path of a file that holds it. */
export async function readJoinToken(setting: string): Promise<string> {
  if (setting.startsWith(`${JOIN_TOKEN_PREFIX}.`)) return setting;
  let text: string;
  try {
    text = await readFile(setting, "utf8");
  } catch (err) {
    throw new SpecError(
      "joinToken",
      `is neither a join token nor a readable file (${(err as Error).message})`,
    );
  }
  parseJoinToken(text);
  return text.trim();
}

/**
 * A node's first certificate, from the signer, with a join token: asks, waits, saves the identity in `tlsDir`. The
 * token is never logged; once used it is worth nothing, so a copy left in a file or user data opens nothing.
 */
export async function joinCluster(options: {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  nodeId: string;
  addresses: string[];
  tlsDir: string;
  /** The `joinToken` setting: a token or a file holding one. */
  joinToken: string;
  logger: Logger;
  /** @default 600000 */
  timeoutMs?: number;
}): Promise<NodeIdentity> {
  const token = await readJoinToken(options.joinToken);
  const { id } = parseJoinToken(token);
  options.logger.info(
    { node: options.nodeId, joinToken: id },
    "no cluster certificate: asking the signer for one with a join token ('holdfast cluster sign')",
  );
  const identity = await requestCertificate({
    store: options.store,
    root: options.root,
    nodeId: options.nodeId,
    addresses: options.addresses,
    proof: withJoinToken(token),
    timeoutMs: options.timeoutMs,
  });
  await saveIdentity(options.tlsDir, identity);
  const facts = certificateFacts(identity.certPem);
  options.logger.info(
    { serial: facts.serial, notAfter: facts.notAfter.toISOString(), tlsDir: options.tlsDir },
    "joined: cluster certificate saved",
  );
  return identity;
}
