import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { SpecError } from "../errors.js";
import type { MetaStore } from "../meta/index.js";
import { certificateFacts, type NodeIdentity, saveIdentity } from "../transport/index.js";
import { JOIN_TOKEN_PREFIX, parseJoinToken } from "./join-tokens.js";
import type { Proof } from "./records.js";
import { requestCertificate, withJoinToken } from "./request.js";

/** The join token a setting gives: the token itself (`hfj1.…`), or the path of a file that holds it. */
export async function readJoinToken(setting: string): Promise<string> {
  if (setting.startsWith(`${JOIN_TOKEN_PREFIX}.`)) {
    parseJoinToken(setting);
    return setting.trim();
  }
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
 * A node's first certificate, from the signer, with a join token (or a cloud identity document): asks, waits, saves the identity in `tlsDir`. The
 * token is never logged; once used it is worth nothing, so a copy left in a file or user data opens nothing.
 */
/** The proof in an identity document file (`{"document", "signature"}`); a SpecError on `identityDocument` if not one. */
export async function readIdentityDocument(file: string): Promise<Proof> {
  try {
    const { document, signature } = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    if (typeof document === "string" && typeof signature === "string")
      return { kind: "identity-document", document, signature: signature.replace(/\s+/g, "") };
  } catch (err) {
    throw new SpecError("identityDocument", `${file}: cannot read (${(err as Error).message})`);
  }
  throw new SpecError("identityDocument", `${file}: must be JSON {"document": string, "signature": string}`);
}

export async function joinCluster(options: {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  nodeId: string;
  addresses: string[];
  tlsDir: string;
  /** The `joinToken` setting: a token or a file holding one. */
  joinToken?: string;
  /** The `identityDocument` setting, used when there is no join token. */
  identityDocument?: string;
  logger: Logger;
  /** @default 600000 */
  timeoutMs?: number;
}): Promise<NodeIdentity> {
  let proof: (csrPem: string) => Proof;
  if (options.joinToken) {
    const token = await readJoinToken(options.joinToken);
    proof = withJoinToken(token);
    options.logger.info(
      { node: options.nodeId, joinToken: parseJoinToken(token).id },
      "no cluster certificate: asking the signer for one with a join token ('holdfast cluster sign')",
    );
  } else if (options.identityDocument) {
    const document = await readIdentityDocument(options.identityDocument);
    proof = () => document;
    options.logger.info(
      { node: options.nodeId, identityDocument: options.identityDocument },
      "no cluster certificate: asking the signer for one with this instance's identity document",
    );
  } else {
    throw new SpecError("joinToken", "is required to join: a node without a certificate needs a join token");
  }
  const identity = await requestCertificate({
    store: options.store,
    root: options.root,
    nodeId: options.nodeId,
    addresses: options.addresses,
    proof,
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
