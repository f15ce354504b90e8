import { Etcd3, EtcdPermissionDeniedError, type IOptions } from "etcd3";
import { UnavailableError } from "../errors.js";
import type {
  Compare,
  MetaStore,
  Operation,
  Registration,
  RegistrationEvents,
  StoredValue,
} from "./store.js";

/** The store could not be reached or answered with an error: control operations fail at once, clearly. */
export class StoreUnavailableError extends UnavailableError {
  constructor(endpoints: string[], cause: unknown) {
    super(
      "meta.unavailable",
      `the metadata store (etcd at ${endpoints.join(", ")}) is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause,
    );
  }
}

/**
 * etcd answered, and refused: the client certificate's user has no role for the key (etcd RBAC). A configuration
 * fault, not an outage: it says whose certificate and which prefix to grant.
 */
export class StoreForbiddenError extends UnavailableError {
  constructor(prefix: string, cause: unknown) {
    super(
      "meta.forbidden",
      `the metadata store (etcd) refused access to ${prefix}: the client certificate's user (its CN) needs a role with readwrite on that prefix (holdfast etcd grant)`,
      cause,
    );
  }
}

/** PEM material for etcd's mutual TLS: etcd's CA, and the client certificate whose CN is the etcd user. */
export interface EtcdTls {
  /** The CA that signed etcd's server certificates. */
  caPem: string;
  /** The client certificate; with etcd's `--client-cert-auth` and auth on, its CN is the user. */
  certPem: string;
  /** The client certificate's private key. */
  keyPem: string;
}

/**
 * The etcd3 client options every Holdfast etcd client uses (the store, the role grant, the tests' root clients): a
 * deadline on every call, so an etcd that does not answer cannot hang a caller, and mutual TLS when `tls` is given.
 */
export function etcdClientOptions(options: {
  endpoints: string[];
  tls?: EtcdTls;
  timeoutMs?: number;
}): IOptions {
  const timeout = options.timeoutMs ?? 5000;
  return {
    hosts: options.endpoints,
    dialTimeout: timeout,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + timeout) }),
    ...(options.tls
      ? {
          credentials: {
            rootCertificate: Buffer.from(options.tls.caPem),
            certChain: Buffer.from(options.tls.certPem),
            privateKey: Buffer.from(options.tls.keyPem),
          },
        }
      : {}),
  };
}

export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. `https://127.0.0.1:2379`. */
  endpoints: string[];
  /** Mutual TLS to etcd. @default - plain HTTP (a lab only: records and leases cross the network in clear) */
  tls?: EtcdTls;
  /**
   * The only prefix this client touches, ending in "/" (a cluster's `/holdfast/<cluster>/`): its probe and its
   * always-true compare stay inside it, so a role limited to the prefix is enough.
   */
  prefix: string;
  /** Deadline for one request, ms: a store that does not answer must not hang a control operation. @default 5000 */
  timeoutMs?: number;
}

/**
 * The production metadata store: etcd v3. Revisions are etcd's mod_revision, and a commit is one etcd
 * transaction (compare mod_revision, then put/delete), so the guarantees the code above relies on (a name, an
 * attachment, an epoch is decided once) are etcd's own. Holdfast does no consensus of its own.
 */
export class EtcdStore implements MetaStore {
  /** Every key's mod_revision is above -1: a compare that always holds, on a key inside the prefix. */
  private readonly always: Compare;

  private constructor(
    private readonly client: Etcd3,
    private readonly options: EtcdStoreOptions,
  ) {
    this.always = { key: `${options.prefix}.always`, revision: -1 };
  }

  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(new Etcd3(etcdClientOptions(options)), options);
    try {
      await store.guard(() => store.client.get(`${options.prefix}.probe`).exec());
    } catch (err) {
      store.client.close();
      throw err;
    }
    return store;
  }

  get(key: string): Promise<StoredValue | undefined> {
    return this.guard(async () => {
      const res = await this.client.get(key).exec();
      const kv = res.kvs[0];
      return kv ? { key, value: kv.value.toString(), revision: Number(kv.mod_revision) } : undefined;
    });
  }

  list(prefix: string): Promise<StoredValue[]> {
    return this.guard(async () => {
      const res = await this.client.getAll().prefix(prefix).sort("Key", "Ascend").exec();
      return res.kvs.map((kv) => ({
        key: kv.key.toString(),
        value: kv.value.toString(),
        revision: Number(kv.mod_revision),
      }));
    });
  }

  commit(compares: Compare[], operations: Operation[]): Promise<boolean> {
    return this.guard(async () => {
      // etcd reports an absent key's mod_revision as 0, so "absent" is `revision == 0` as in the local store.
      // etcd needs at least one compare; with none, one that always holds stands in.
      const [first, ...rest]: [Compare, ...Compare[]] =
        compares.length > 0 ? [compares[0] as Compare, ...compares.slice(1)] : [this.always];
      let txn = this.client.if(first.key, "Mod", first === this.always ? ">" : "==", first.revision);
      for (const c of rest) txn = txn.and(c.key, "Mod", "==", c.revision);
      const result = await txn
        .then(
          ...operations.map((op) =>
            "put" in op ? this.client.put(op.put).value(op.value) : this.client.delete().key(op.delete),
          ),
        )
        .commit();
      return result.succeeded;
    });
  }

  register(
    key: string,
    value: string,
    ttlSeconds: number,
    events: RegistrationEvents = {},
  ): Promise<Registration> {
    return this.guard(async () => {
      const ttl = ttlSeconds * 1000;
      // The grant is sent after this instant, so the lease lives at least until it plus the TTL.
      let heldUntil = performance.now() + ttl;
      const lease = this.client.lease(ttlSeconds);
      // Keep-alives are answered in the order they were sent, on one stream; a broken stream loses the ones in flight.
      const sent: number[] = [];
      lease.on("keepaliveFired", () => sent.push(performance.now()));
      lease.on("keepaliveEstablished", () => {
        sent.length = 0;
      });
      lease.on("keepaliveFailed", () => {
        sent.length = 0;
      });
      lease.on("keepaliveSucceeded", () => {
        const at = sent.shift();
        if (at === undefined) return;
        heldUntil = Math.max(heldUntil, at + ttl);
        events.onRenewed?.();
      });
      // Swallow the lease's own "lost" until it is ours: a lease whose first put failed is dropped here, and
      // reporting its loss too would start a second registration beside the caller's retry.
      lease.on("lost", () => undefined);
      try {
        await lease.put(key).value(value).exec();
      } catch (err) {
        lease.release();
        throw err;
      }
      lease.once("lost", () => events.onLost?.());
      return { heldUntil: () => heldUntil, close: () => lease.revoke().catch(() => undefined) };
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof EtcdPermissionDeniedError) throw new StoreForbiddenError(this.options.prefix, err);
      throw new StoreUnavailableError(this.options.endpoints, err);
    }
  }
}
