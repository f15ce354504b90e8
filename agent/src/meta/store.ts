/** One key as the store holds it. `revision` changes on every write of that key (etcd's mod_revision). */
export interface StoredValue {
  key: string;
  value: string;
  revision: number;
}

/** A condition a transaction checks: the key is at `revision`, or absent when `revision` is 0. */
export interface Compare {
  key: string;
  revision: number;
}

/** A key that exists only while its owner is alive: an etcd lease kept alive by this process. */
export interface Registration {
  /**
   * Until when the key certainly lives in the store, as a `performance.now()` time: the time the last keep-alive
   * the store answered was sent, plus the TTL (the store counts the TTL from when it received it, which is later).
   * Infinity for a store without leases.
   */
  heldUntil(): number;
  /** Deletes the key now (clean shutdown) instead of waiting for the lease to expire. */
  close(): Promise<void>;
}

/** What a registration reports to its owner. */
export interface RegistrationEvents {
  /** The store dropped the lease (an outage longer than the TTL): the owner can register again. */
  onLost?: () => void;
  /** A keep-alive was answered: `heldUntil` moved on. */
  onRenewed?: () => void;
}

export type Operation = { put: string; value: string } | { delete: string };

/**
 * The metadata store: a small transactional key-value store, the subset of etcd v3 Holdfast needs. Every
 * decision that must be unique (a name, an attachment, an epoch) is one `commit` whose compares guard it,
 * so the local store and etcd give the same guarantees to the code above them.
 */
export interface MetaStore {
  /** The value at `key`, or undefined. */
  get(key: string): Promise<StoredValue | undefined>;
  /** Every key that starts with `prefix`, in key order. */
  list(prefix: string): Promise<StoredValue[]>;
  /** Applies `operations` atomically if every compare holds; returns false (and changes nothing) otherwise. */
  commit(compares: Compare[], operations: Operation[]): Promise<boolean>;
  /**
   * Keeps `key` = `value` while this process lives and reaches the store; the key disappears about `ttlSeconds`
   * after it stops (etcd lease with keep-alive).
   */
  register(
    key: string,
    value: string,
    ttlSeconds: number,
    events?: RegistrationEvents,
  ): Promise<Registration>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}
