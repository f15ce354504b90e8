import type { Logger } from "pino";
import type { MetaStore } from "../meta/index.js";
import { certificateFacts, type NodeIdentity, saveIdentity } from "../transport/index.js";
import { requestCertificate, withCurrentIdentity } from "./request.js";

/** Whether a certificate valid from `notBefore` to `notAfter` is due for renewal at `now`: a third of its life left. */
export function renewalDue(cert: { notBefore: Date; notAfter: Date }, now: number): boolean {
  const life = cert.notAfter.getTime() - cert.notBefore.getTime();
  return cert.notAfter.getTime() - now < life / 3;
}

export interface CertificateRenewerOptions {
  store: MetaStore;
  /** The cluster's key prefix (`/holdfast/<cluster>`). */
  root: string;
  nodeId: string;
  /** Addresses the renewed certificate names. */
  addresses: string[];
  /** Where the identity is saved (node.crt, node.key, ca.crt), so a restart uses the renewed one. */
  tlsDir: string;
  /**
   * The identity in use: renewal replaces its fields in place, so whoever holds it (the replica dialer) presents the
   * new certificate on its next connection.
   */
  identity: NodeIdentity;
  /** Told after each renewal: the replication server swaps its certificate without dropping connections. */
  onRenewed: (identity: NodeIdentity) => void;
  logger: Logger;
}

/**
 * Renews this node's certificate before it expires: when a third of its life is left, a new key and CSR, proved by
 * the current key, answered by the signer. Looked at every thirtieth of the certificate's life (1 s to 60 s); a
 * failed attempt is logged and tried again at the next look, until the certificate expires.
 */
export class CertificateRenewer {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: CertificateRenewerOptions) {}

  start(): void {
    this.schedule();
  }

  /** Stops renewing; a renewal waiting for the signer is given up (it may wait for days), not waited for. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
  }

  private schedule(): void {
    if (this.stopped) return;
    const facts = certificateFacts(this.options.identity.certPem);
    const life = facts.notAfter.getTime() - facts.notBefore.getTime();
    const every = Math.min(60_000, Math.max(1000, life / 30));
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, every).unref();
  }

  /** Renews now if due. */
  async tick(): Promise<void> {
    const { identity, logger } = this.options;
    const facts = certificateFacts(identity.certPem);
    if (!renewalDue(facts, Date.now())) return;
    try {
      const renewed = await requestCertificate({
        store: this.options.store,
        root: this.options.root,
        nodeId: this.options.nodeId,
        addresses: this.options.addresses,
        proof: withCurrentIdentity(identity),
        // Within the time left, so that a stuck attempt gives way to the next before the certificate expires.
        timeoutMs: Math.max(1000, (facts.notAfter.getTime() - Date.now()) / 3),
        signal: this.abort.signal,
      });
      if (this.stopped) return;
      await saveIdentity(this.options.tlsDir, renewed);
      Object.assign(identity, renewed);
      this.options.onRenewed(identity);
      const next = certificateFacts(renewed.certPem);
      logger.info(
        { serial: next.serial, notAfter: next.notAfter.toISOString(), previous: facts.serial },
        "certificate renewed",
      );
    } catch (err) {
      if (this.stopped) return;
      logger.warn(
        { err: String((err as Error).message ?? err), notAfter: facts.notAfter.toISOString() },
        "certificate renewal failed; trying again",
      );
    }
  }
}
