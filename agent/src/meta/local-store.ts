import { open, readFile, rename } from "node:fs/promises";
import { z } from "zod";
import { OperationError } from "../errors.js";
import type { Compare, MetaStore, Operation, Registration, StoredValue } from "./store.js";

const Snapshot = z.object({
  revision: z.number().int().nonnegative(),
  keys: z.record(z.string(), z.object({ value: z.string(), revision: z.number().int().positive() })),
});
type Snapshot = z.infer<typeof Snapshot>;

/**
 * The single-node metadata store: every key in one JSON file, rewritten atomically (write, fsync, rename)
 * on each commit. Commits are serialised, so compares see every earlier commit, as in etcd.
 */
export class LocalStore implements MetaStore {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private snapshot: Snapshot,
  ) {}

  static async open(path: string): Promise<LocalStore> {
    let snapshot: Snapshot = { revision: 0, keys: {} };
    try {
      snapshot = Snapshot.parse(JSON.parse(await readFile(path, "utf8")));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new OperationError(
          "meta.corrupt",
          `cannot read the metadata file ${path}: ${String(err)}`,
          err,
        );
      }
    }
    return new LocalStore(path, snapshot);
  }

  async get(key: string): Promise<StoredValue | undefined> {
    const entry = this.snapshot.keys[key];
    return entry ? { key, ...entry } : undefined;
  }

  async list(prefix: string): Promise<StoredValue[]> {
    return Object.keys(this.snapshot.keys)
      .filter((key) => key.startsWith(prefix))
      .sort()
      .map((key) => ({ key, ...(this.snapshot.keys[key] as { value: string; revision: number }) }));
  }

  commit(compares: Compare[], operations: Operation[]): Promise<boolean> {
    const result = this.queue.then(() => this.apply(compares, operations));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** One node, one process: the key lives until `close()`; a killed agent's key is replaced when it restarts. */
  async register(key: string, value: string): Promise<Registration> {
    await this.commit([], [{ put: key, value }]);
    return {
      heldUntil: () => Number.POSITIVE_INFINITY,
      close: async () => void (await this.commit([], [{ delete: key }])),
    };
  }

  async close(): Promise<void> {
    await this.queue;
  }

  private async apply(compares: Compare[], operations: Operation[]): Promise<boolean> {
    for (const { key, revision } of compares) {
      if ((this.snapshot.keys[key]?.revision ?? 0) !== revision) return false;
    }
    const revision = this.snapshot.revision + 1;
    const keys = { ...this.snapshot.keys };
    for (const op of operations) {
      if ("put" in op) keys[op.put] = { value: op.value, revision };
      else delete keys[op.delete];
    }
    const next = { revision, keys };
    await this.persist(next);
    this.snapshot = next;
    return true;
  }

  private async persist(snapshot: Snapshot): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.writeFile(JSON.stringify(snapshot));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
  }
}
