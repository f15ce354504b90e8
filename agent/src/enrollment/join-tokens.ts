import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import { z } from "zod";
import { Name } from "../config/index.js";
import { SpecError } from "../errors.js";
import type { MetaStore } from "../meta/index.js";

/**
 * Join tokens (Kubernetes bootstrap tokens' shape): `hfj1.<id>.<secret>`, one per node, single use, short-lived. The
 * store never holds the secret, nor anything a reader could enroll with: the secret deterministically derives a
 * P-256 key pair, and the record keeps only the public half. A node proves it holds the token by signing its CSR
 * with the derived key; the signer verifies with the public key and deletes the record in the transaction that
 * issues the certificate, so the token works once.
 */
export const JOIN_TOKEN_PREFIX = "hfj1";

/** A join token as the store keeps it, at `<root>/join-tokens/<id>`. */
export const JoinTokenRecordSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  /** The one node this token enrolls. */
  node: Name,
  /** SPKI PEM of the key the secret derives. */
  publicKey: z.string().max(1024),
  createdAt: z.string().max(64),
  expiresAt: z.string().max(64),
});
export type JoinTokenRecord = z.infer<typeof JoinTokenRecordSchema>;

export const joinTokenKey = (root: string, id: string) => `${root}/join-tokens/${id}`;

const P256_ORDER = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

/** The P-256 private key a token's secret stands for (HKDF-SHA256 of the secret, retried in the rare invalid case). */
function derivedKey(id: string, secret: string): KeyObject {
  for (let counter = 0; ; counter++) {
    const d = Buffer.from(hkdfSync("sha256", secret, "holdfast join token", `${id}/${counter}`, 32));
    const n = BigInt(`0x${d.toString("hex")}`);
    if (n === 0n || n >= P256_ORDER) continue;
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(d);
    const pub = ecdh.getPublicKey(); // 0x04 || x || y
    return createPrivateKey({
      format: "jwk",
      key: {
        kty: "EC",
        crv: "P-256",
        d: d.toString("base64url"),
        x: pub.subarray(1, 33).toString("base64url"),
        y: pub.subarray(33, 65).toString("base64url"),
      },
    });
  }
}

/** A join token split into its id and secret; a SpecError on `joinToken` if it is not one. */
export function parseJoinToken(token: string): { id: string; secret: string } {
  const [prefix, id, secret, ...rest] = token.trim().split(".");
  if (prefix !== JOIN_TOKEN_PREFIX || !id || !/^[0-9a-f]{16}$/.test(id) || !secret || rest.length > 0) {
    throw new SpecError(
      "joinToken",
      `must be ${JOIN_TOKEN_PREFIX}.<id>.<secret>, as 'holdfast cluster join-token create' prints it`,
    );
  }
  return { id, secret };
}

/** The proof a node sends with its CSR: the CSR signed by the key its token derives. The secret stays on the node. */
export function joinTokenProof(
  token: string,
  csrPem: string,
): { kind: "join-token"; tokenId: string; signature: string } {
  const { id, secret } = parseJoinToken(token);
  const signature = sign("sha256", Buffer.from(csrPem), derivedKey(id, secret)).toString("base64");
  return { kind: "join-token", tokenId: id, signature };
}

/** Whether `signature` over `csrPem` was made with the key of the token whose public key the record holds. */
export function joinTokenSigned(record: JoinTokenRecord, csrPem: string, signature: string): boolean {
  try {
    return verify(
      "sha256",
      Buffer.from(csrPem),
      createPublicKey(record.publicKey),
      Buffer.from(signature, "base64"),
    );
  } catch {
    return false;
  }
}

/**
 * Makes a join token for `node`, valid for `ttlSeconds`; the answer holds the token, to be shown this once. Run where
 * the operator has store access (`holdfast cluster join-token create`).
 */
export async function createJoinToken(
  store: MetaStore,
  root: string,
  options: { node: string; ttlSeconds: number; now?: number },
): Promise<JoinTokenRecord & { token: string }> {
  const node = Name.safeParse(options.node);
  if (!node.success) throw new SpecError("node", node.error.issues[0]?.message ?? "invalid");
  if (!Number.isFinite(options.ttlSeconds) || options.ttlSeconds <= 0)
    throw new SpecError("ttl", "must be a positive duration");
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const now = options.now ?? Date.now();
  const record: JoinTokenRecord = {
    id,
    node: options.node,
    publicKey: createPublicKey(derivedKey(id, secret)).export({ type: "spki", format: "pem" }).toString(),
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + options.ttlSeconds * 1000).toISOString(),
  };
  const key = joinTokenKey(root, id);
  await store.commit([{ key, revision: 0 }], [{ put: key, value: JSON.stringify(record) }]);
  return { ...record, token: `${JOIN_TOKEN_PREFIX}.${id}.${secret}` };
}
