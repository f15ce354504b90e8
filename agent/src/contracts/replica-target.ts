import type { BlockDevice } from "./block-device.js";

/** A copy of the volume the engine writes to: the local replica, or a remote one over the wire. */
export interface ReplicaTarget extends BlockDevice {
  /** Admits an engine holding `epoch`; rejects one below the highest epoch the replica has seen. */
  admit(epoch: number): Promise<void>;
  /** Grows the copy to `size` bytes. */
  grow(size: number): Promise<void>;
  /** Regions in the copy's activity log: where it may differ from the others after an engine crash. */
  activeRegions(): number[] | Promise<number[]>;
  /** SHA-256 of one region, equal on two copies exactly when their bytes are. */
  regionChecksum(region: number): Promise<string>;
  /**
   * Settles, with the cause, once the copy can answer nothing more (its connection broke). The engine drops it then
   * rather than at its next request, so an idle volume's in-sync set in the store never names a dead connection.
   * @default - never settles: a local copy fails only request by request
   */
  readonly lost?: Promise<unknown>;
}

/** This node's standing to serve I/O: its lease in the metadata store, which other nodes' takeovers wait out. */
export interface ServingLease {
  /** Whether this node's lease certainly has not expired for any other node (with a margin). */
  readonly held: boolean;
  /**
   * Resolves once the node may serve again: its lease is held and the attachment is proven still this engine's.
   * Rejects when it never may again (another node holds the attachment now).
   */
  regained(): Promise<void>;
}
