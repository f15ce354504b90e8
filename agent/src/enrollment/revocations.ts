import type { Logger } from "pino";

export type { RevocationCheck, Revoked };

import { NotFoundError, SpecError } from "../errors.js";
import { type BadRecordError, type MetaStore, readRecord, readRecords } from "../meta/index.js";
import type { RevocationCheck, Revoked } from "../transport/index.js";
import { CertRecordSchema, enrollmentKeys, type RevokedRecord, RevokedRecordSchema } from "./records.js";

/**
 * The revoked serials (`revoked/<serial>`), as every node honours them: read from the store at each handshake
 * (revocations are rare and handshakes are too: engines hold their connections), and refreshed every few seconds so
 * that open connections of a serial revoked since are cut.
 */
export class RevocationList implements RevocationCheck {
  private serials = new Set<string>();
  private readonly listeners: Array<(revoked: Revoked) => void> = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly options: {
      store: MetaStore;
      root: string;
      report: (err: BadRecordError) => void;
      logger: Logger;
      /** How often the list is read whole, and open connections of newly revoked serials cut. @default 5000 */
      refreshMs?: number;
      /** How long a handshake waits for the store before the list as last read decides. @default 1000 */
      handshakeReadMs?: number;
    },
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(
      () =>
        void this.refresh().catch((err) =>
          this.options.logger.warn({ err: String(err) }, "revocations: refresh failed"),
        ),
      this.options.refreshMs ?? 5000,
    ).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const { store, root, report } = this.options;
    const records = readRecords(
      RevokedRecordSchema,
      await store.list(enrollmentKeys(root).revokedAll),
      report,
    );
    const added = records.filter((r) => !this.serials.has(r.serial));
    this.serials = new Set(records.map((r) => r.serial));
    if (added.length === 0) return;
    const revoked: Revoked = {
      serials: new Set(added.map((r) => r.serial)),
      nodes: new Set(added.flatMap((r) => (r.wholeNode && r.node ? [r.node] : []))),
    };
    for (const listener of this.listeners) listener(revoked);
  }

  has(serial: string): boolean {
    return this.serials.has(serial);
  }

  async isRevoked(serial: string): Promise<boolean> {
    const key = enrollmentKeys(this.options.root).revoked(serial);
    let timer: NodeJS.Timeout | undefined;
    // The store out or slow: a handshake is judged by the list as last read, not refused outright (engines
    // reconnect through etcd outages) nor waved through; and not held past a second, since the peer's pings are
    // not answered until the connection is served.
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), this.options.handshakeReadMs ?? 1000);
    });
    try {
      const found = await Promise.race([this.options.store.get(key), late]);
      if (found === "late") return this.serials.has(serial);
      // Not added to the list here: the next refresh must still see it as new, to cut its open connections.
      return found !== undefined;
    } catch {
      return this.serials.has(serial);
    } finally {
      clearTimeout(timer);
    }
  }

  onRevoked(listener: (revoked: Revoked) => void): void {
    this.listeners.push(listener);
  }
}

/**
 * Revokes a node's certificates (every unexpired one the signer issued it), or one serial. The records stay until the
 * certificates expire; the signer refuses renewals of a revoked certificate, so a revoked node must join again with a
 * new token.
 */
export async function revoke(
  store: MetaStore,
  root: string,
  target: { node?: string; serial?: string },
): Promise<RevokedRecord[]> {
  const keys = enrollmentKeys(root);
  if ((target.node === undefined) === (target.serial === undefined))
    throw new SpecError("node", "give --node ID or --serial HEX, one of them");
  const now = new Date().toISOString();
  let records: RevokedRecord[];
  if (target.node !== undefined) {
    const entry = await store.get(keys.cert(target.node));
    if (!entry) throw new NotFoundError("certificate", target.node);
    const cert = readRecord(CertRecordSchema, entry);
    records = cert.issued.map((c) => ({
      serial: c.serial,
      node: cert.node,
      notAfter: c.notAfter,
      revokedAt: now,
      wholeNode: true,
    }));
  } else {
    const serial = (target.serial as string).toLowerCase().replace(/:/g, "");
    if (!/^[0-9a-f]{2,64}$/.test(serial))
      throw new SpecError("serial", "must be the certificate's serial in hex");
    const certs = readRecords(CertRecordSchema, await store.list(keys.certs), () => undefined);
    const owner = certs.find((c) => c.issued.some((i) => i.serial === serial));
    const issued = owner?.issued.find((i) => i.serial === serial);
    records = [{ serial, node: owner?.node, notAfter: issued?.notAfter, revokedAt: now }];
  }
  await store.commit(
    [],
    records.map((r) => ({ put: keys.revoked(r.serial), value: JSON.stringify(r) })),
  );
  return records;
}
