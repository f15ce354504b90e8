import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { NotFoundError } from "../errors.js";
import { type BadRecordError, type MetaStore, readRecord, readRecords } from "../meta/index.js";

/** What a token may do: each role may do what the ones before it may. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Whether `held` may do what needs `needed`. */
export function allows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

/** A token as the store keeps it: its secret only as a SHA-256 hash (the secret is 32 random bytes). */
export const TokenRecordSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  role: z.enum(ROLES),
  name: z.string().max(128),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string().max(64),
  expiresAt: z.string().max(64).nullable(),
});
export type TokenRecord = z.infer<typeof TokenRecordSchema>;

/** A token as `token list` shows it. */
export type TokenView = Omit<TokenRecord, "hash">;

/** Who a request's token says it is. */
export interface Principal {
  /** The token's id; `bootstrap` for the node's own token (`<dataDir>/token`), which is an admin token. */
  token: string;
  role: Role;
}

const PREFIX = "hf1";

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * Scoped API tokens, cluster-wide in the store (docs/decisions/0010-trust-boundary.md): `hf1.<id>.<secret>`,
 * checked by id, the secret compared by hash in constant time; revoked by deleting the record. The node's own
 * token is the first admin token, so a cluster is never without one.
 */
export class ApiTokens {
  private readonly bootstrapHash: string;

  constructor(
    private readonly store: MetaStore,
    /** The cluster's key prefix (`/holdfast/<cluster>`). */
    private readonly root: string,
    /** The node's own token: role admin. */
    bootstrap: string,
    private readonly report: (err: BadRecordError) => void,
  ) {
    this.bootstrapHash = hash(bootstrap);
  }

  private key(id: string): string {
    return `${this.root}/tokens/${id}`;
  }

  /** Makes a token; the answer holds its secret, shown this once and stored only hashed. */
  async create(options: {
    role: Role;
    name?: string;
    ttlSeconds?: number;
  }): Promise<TokenView & { token: string }> {
    const id = randomBytes(8).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const now = Date.now();
    const record: TokenRecord = {
      id,
      role: options.role,
      name: options.name ?? "",
      hash: hash(secret),
      createdAt: new Date(now).toISOString(),
      expiresAt: options.ttlSeconds ? new Date(now + options.ttlSeconds * 1000).toISOString() : null,
    };
    await this.store.commit(
      [{ key: this.key(id), revision: 0 }],
      [{ put: this.key(id), value: JSON.stringify(record) }],
    );
    const { hash: _, ...view } = record;
    return { ...view, token: `${PREFIX}.${id}.${secret}` };
  }

  async list(): Promise<TokenView[]> {
    const records = readRecords(
      TokenRecordSchema,
      await this.store.list(`${this.root}/tokens/`),
      this.report,
    );
    return records.map(({ hash: _, ...view }) => view).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async revoke(id: string): Promise<void> {
    const entry = await this.store.get(this.key(id));
    if (!entry) throw new NotFoundError("token", id);
    await this.store.commit([{ key: entry.key, revision: entry.revision }], [{ delete: entry.key }]);
  }

  /** Who `Authorization: Bearer <token>` is, or undefined: unknown, revoked, expired or malformed. */
  async authenticate(header: string | undefined): Promise<Principal | undefined> {
    if (!header?.startsWith("Bearer ")) return undefined;
    const presented = header.slice("Bearer ".length);
    if (same(hash(presented), this.bootstrapHash)) return { token: "bootstrap", role: "admin" };
    const [prefix, id, secret, ...rest] = presented.split(".");
    if (prefix !== PREFIX || !id || !secret || rest.length > 0 || !/^[0-9a-f]{16}$/.test(id))
      return undefined;
    const entry = await this.store.get(this.key(id));
    if (!entry) return undefined;
    let record: TokenRecord;
    try {
      record = readRecord(TokenRecordSchema, entry);
    } catch (err) {
      this.report(err as BadRecordError);
      return undefined;
    }
    if (!same(hash(secret), record.hash)) return undefined;
    if (record.expiresAt && Date.parse(record.expiresAt) <= Date.now()) return undefined;
    return { token: id, role: record.role };
  }
}

/** Two hex digests compared in constant time. */
function same(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
