import { FencedError } from "../contracts/index.js";
import { ForbiddenError } from "../errors.js";
import type { ReplicaPolicy } from "../transport/index.js";
import type { VolumeCatalog } from "./catalog.js";

export interface ReplicaAuthorityOptions {
  /** This node's id: the node whose replicas are asked for. */
  nodeId: string;
  catalog: VolumeCatalog;
}

/**
 * Who may act on this node's replicas over the replication port, judged against the catalog
 * (docs/decisions/0010-trust-boundary.md):
 * - admit an epoch (and so read and write at it): only the node the volume's attachment names, at that epoch;
 * - create a replica: any node while the volume has no record yet (it is being created), else its attached node;
 * - destroy one: only what a tombstone names for this node, or what that same peer created here and no record
 *   lists (a create it is undoing); never a replica a record lists.
 */
export class ReplicaAuthority implements ReplicaPolicy {
  /**
   * The last attachment verified per volume. The store hands out each epoch once, to one node, and never again, so
   * a verified (epoch, node) stays true: an admit it matches needs no store read (the repair loop's asks while etcd
   * is slow), and anything else is read fresh.
   */
  private readonly verified = new Map<string, { epoch: number; node: string }>();
  /** Replicas created here since this agent started, and by whom. */
  private readonly createdBy = new Map<string, string>();

  constructor(private readonly options: ReplicaAuthorityOptions) {}

  async admit(peer: string, volumeId: string, epoch: number): Promise<void> {
    const known = this.verified.get(volumeId);
    if (known?.epoch === epoch && known.node === peer) return;
    const attachment = await this.options.catalog.attachment(volumeId);
    if (attachment && attachment.epoch > epoch) throw new FencedError(epoch, attachment.epoch);
    if (!attachment || attachment.epoch !== epoch || attachment.node !== peer) {
      const holder = attachment
        ? `${attachment.node} holds it at epoch ${attachment.epoch}`
        : "it is not attached";
      throw new ForbiddenError(
        "replica.not_holder",
        `${peer} may not admit epoch ${epoch} for volume ${volumeId}: ${holder}`,
      );
    }
    this.verified.set(volumeId, { epoch, node: peer });
  }

  async create(peer: string, volumeId: string): Promise<void> {
    const { catalog } = this.options;
    if (!(await catalog.byId(volumeId))) return;
    const attachment = await catalog.attachment(volumeId);
    if (attachment?.node === peer) return;
    throw new ForbiddenError(
      "replica.not_holder",
      `${peer} may not place a replica of volume ${volumeId}: only its attached node may (${attachment ? attachment.node : "none: it is detached"})`,
    );
  }

  async destroy(peer: string, volumeId: string): Promise<void> {
    const { catalog, nodeId } = this.options;
    const [record, tombstones] = await Promise.all([catalog.byId(volumeId), catalog.tombstonesOf(nodeId)]);
    if (record?.replicas.some((r) => r.node === nodeId)) {
      throw new ForbiddenError(
        "replica.listed",
        `${peer} may not destroy ${nodeId}'s replica of volume "${record.spec.name}": the volume lists it`,
      );
    }
    if (tombstones.some((t) => t.id === volumeId)) return;
    if (this.createdBy.get(volumeId) === peer) return;
    throw new ForbiddenError(
      "replica.not_condemned",
      `${peer} may not destroy ${nodeId}'s replica of volume ${volumeId}: no tombstone names it`,
    );
  }

  created(peer: string, volumeId: string): void {
    this.createdBy.set(volumeId, peer);
  }
}
