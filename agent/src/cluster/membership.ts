import type { Logger } from "pino";
import { z } from "zod";
import { HostPort, Name } from "../config/index.js";
import {
  type BadRecordError,
  filedUnder,
  type MetaStore,
  type Registration,
  readRecords,
} from "../meta/index.js";

/** A node record read back from the store: its addresses are where the CLI sends tokens and engines dial. */
export const NodeInfoSchema = z.object({
  id: Name,
  api: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).refine(
    (url) => {
      const u = new URL(url);
      return u.username === "" && u.password === "" && (u.pathname === "/" || u.pathname === "") && !u.search;
    },
    { error: "must be scheme://host:port, nothing more" },
  ),
  replication: z.union([z.literal(""), HostPort]),
  zone: Name,
  rack: Name,
  capacity: z.number().nonnegative(),
  free: z.number().nonnegative(),
  joinedAt: z.string().max(64),
  certNotAfter: z.iso.datetime({ error: "must be an ISO 8601 time" }).optional(),
});

/** What a node tells the cluster about itself when it joins. */
export interface NodeInfo {
  id: string;
  /** URL of the node's REST API. */
  api: string;
  /** HOST:PORT of the node's replication port (mutual TLS), or "" on a single-node install. */
  replication: string;
  zone: string;
  rack: string;
  /** Bytes in the node's storage pools, and bytes free, when it joined. */
  capacity: number;
  free: number;
  joinedAt: string;
  /** When the node's replication certificate expires (ISO 8601); absent on a node without one. */
  certNotAfter?: string;
}

/** A node as the cluster sees it: `up` while its lease is alive. */
export interface NodeStatus extends NodeInfo {
  state: "up" | "down";
}

export interface MembershipOptions {
  store: MetaStore;
  /** Key prefix of the cluster, e.g. `/holdfast/default`. */
  root: string;
  /** Seconds a node's lease lives without a keep-alive: how long a dead node still counts as up. */
  leaseTtlSeconds: number;
  logger: Logger;
  /** Told of every node record that is not valid: it is left out of the list. */
  report: (err: BadRecordError) => void;
}

/**
 * Cluster membership: a node's record (`nodes/<id>`) stays after it leaves, so `node list` can show it down; its
 * liveness (`alive/<id>`) is a key on an etcd lease that its agent keeps alive. A node whose lease expired is down.
 */
export class Membership {
  private registration?: Registration;
  private info?: NodeInfo;
  private closed = false;
  private rejoining = false;
  private readonly renewed: Array<() => void> = [];

  constructor(private readonly options: MembershipOptions) {}

  /**
   * Whether this node's lease certainly has not expired for any other node, with a margin: a quarter of the TTL, at
   * least 250 ms, for the time between this check and a request reaching its replica. While it is false, the node
   * serves no I/O (self-fencing): another node may be taking its volumes over.
   */
  get leaseHeld(): boolean {
    const until = this.registration?.heldUntil() ?? 0;
    return performance.now() < until - Math.max(250, (this.options.leaseTtlSeconds * 1000) / 4);
  }

  /** Resolves once the lease is held again: renewed, or taken anew after it was lost. */
  leaseRegained(): Promise<void> {
    if (this.leaseHeld) return Promise.resolve();
    return new Promise((resolve) => this.renewed.push(resolve));
  }

  /** Records this node and takes its lease. */
  async join(info: NodeInfo): Promise<void> {
    this.info = info;
    await this.options.store.commit([], [{ put: this.nodeKey(info.id), value: JSON.stringify(info) }]);
    await this.register();
  }

  /** Refreshes this node's record (free space changes as volumes fill). */
  async update(change: Partial<NodeInfo>): Promise<void> {
    if (!this.info || this.closed) return;
    this.info = { ...this.info, ...change };
    await this.options.store.commit(
      [],
      [{ put: this.nodeKey(this.info.id), value: JSON.stringify(this.info) }],
    );
  }

  /** Every node that ever joined, with its state. */
  async list(): Promise<NodeStatus[]> {
    const { store, root } = this.options;
    const alive = new Set(
      (await store.list(`${root}/alive/`)).map((e) => e.key.slice(`${root}/alive/`.length)),
    );
    const prefix = `${root}/nodes/`;
    const nodes = readRecords(
      NodeInfoSchema,
      await store.list(prefix),
      this.options.report,
      filedUnder(prefix, "node", (info) => info.id),
    );
    return nodes.map((info) => ({ ...info, state: alive.has(info.id) ? "up" : "down" }));
  }

  /** Gives up the lease now, so the node shows down at once rather than after the TTL. */
  async leave(): Promise<void> {
    this.closed = true;
    await this.registration?.close();
  }

  private nodeKey(id: string): string {
    return `${this.options.root}/nodes/${id}`;
  }

  private async register(): Promise<void> {
    const info = this.info as NodeInfo;
    const { store, root, leaseTtlSeconds, logger } = this.options;
    this.registration = await store.register(`${root}/alive/${info.id}`, info.api, leaseTtlSeconds, {
      onLost: () => {
        if (this.closed) return;
        logger.warn({ node: info.id }, "lease lost (store unreachable longer than its TTL): joining again");
        this.retryRegister();
      },
      onRenewed: () => this.wakeRenewed(),
    });
    this.wakeRenewed();
  }

  private wakeRenewed(): void {
    if (this.renewed.length > 0 && this.leaseHeld) for (const wake of this.renewed.splice(0)) wake();
  }

  /** Registers again, once a second until it works; one such loop at a time, however often the lease is lost. */
  private retryRegister(): void {
    if (this.rejoining) return;
    this.rejoining = true;
    const attempt = () => {
      this.register().then(
        () => {
          this.rejoining = false;
        },
        (err) => {
          if (this.closed) return;
          this.options.logger.warn({ err: String(err) }, "cannot renew this node's lease yet; retrying");
          setTimeout(attempt, 1000).unref();
        },
      );
    };
    attempt();
  }
}
