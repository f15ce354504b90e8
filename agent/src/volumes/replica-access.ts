import type { Membership, NodeStatus } from "../cluster/index.js";
import { splitHostPort } from "../config/index.js";
import type { ReplicaTarget } from "../contracts/index.js";
import { OperationError } from "../errors.js";
import { type NodeIdentity, RemoteReplica, type RemoteReplicaOptions } from "../transport/index.js";
import type { LocalReplicas } from "./local-replicas.js";

/** An open replica, local or remote, and how to let go of it. */
export interface OpenReplica {
  target: ReplicaTarget;
  close(): Promise<void>;
}

export interface ReplicaAccessOptions {
  /** This node's id. */
  nodeId: string;
  local: LocalReplicas;
  membership: Membership;
  /** This node's certificate for the replication port; absent on a single-node install. */
  identity?: NodeIdentity;
  /** Whether a serial is revoked: replicas on a node presenting one are not dialled. @default none is */
  revoked?: (serial: string) => boolean;
  /** Bounds on dialing remote replicas and on their answers; each defaults as RemoteReplicaOptions says. */
  timeouts?: Pick<
    RemoteReplicaOptions,
    "connectTimeoutMs" | "livenessTimeoutMs" | "requestTimeoutMs" | "flushTimeoutMs"
  >;
}

/** How the volumes on this node reach replicas: their own through the file system, others' over mutual TLS. */
export class ReplicaAccess {
  constructor(private readonly options: ReplicaAccessOptions) {}

  /** This node's membership: its lease is what engines here self-fence on. */
  get membership(): Membership {
    return this.options.membership;
  }

  /** This node's certificate, as renewed (its fields are replaced in place), if it has one. */
  get identity(): NodeIdentity | undefined {
    return this.options.identity;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  nodes(): Promise<NodeStatus[]> {
    return this.options.membership.list();
  }

  async open(node: string, volumeId: string): Promise<OpenReplica> {
    const { local } = this.options;
    if (node === this.options.nodeId) {
      // Through a session of its own: the local engine's requests carry its epoch as remote ones do.
      const target = (await local.acquire(volumeId)).session();
      return { target, close: () => local.release(volumeId) };
    }
    const target = await RemoteReplica.connect(await this.remote(node, volumeId));
    return {
      target,
      close: async () => target.close(),
    };
  }

  async create(
    node: string,
    spec: { volumeId: string; size: number; blockSize: number },
  ): Promise<{ pool: string }> {
    if (node === this.options.nodeId) return this.options.local.create(spec);
    return RemoteReplica.create(await this.remote(node, spec.volumeId), spec);
  }

  async destroy(node: string, volumeId: string): Promise<void> {
    if (node === this.options.nodeId) return this.options.local.destroy(volumeId);
    await RemoteReplica.destroy(await this.remote(node, volumeId));
  }

  private async remote(node: string, volumeId: string) {
    const { identity } = this.options;
    const status = (await this.nodes()).find((n) => n.id === node);
    if (!identity || !status?.replication) {
      throw new OperationError(
        "replica.unreachable",
        identity
          ? `node ${node} has no replication address`
          : `this node has no cluster certificate, so it cannot reach ${node}'s replicas`,
      );
    }
    const { host, port } = splitHostPort(status.replication);
    return {
      identity,
      nodeId: node,
      host,
      port,
      volumeId,
      revoked: this.options.revoked,
      ...this.options.timeouts,
    };
  }
}
