import { randomUUID } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentConfig } from "./config/index.js";
import { InputError } from "./errors.js";
import { type MetaStore, readRecord } from "./meta/index.js";
import { type ClusterRecord, ClusterRecordSchema, type StoreKeys } from "./volumes/index.js";

/** Who a data dir belongs to, written on its first start: `<dataDir>/identity.json`. */
interface DataDirIdentity {
  nodeId: string;
  cluster: string;
  /** The uuid of the cluster's record in the store (`/holdfast/<cluster>/cluster`). */
  clusterUuid: string;
}

/** The agent was started as someone else than its data dir records: exit code 2, the user must choose. */
export class IdentityError extends InputError {
  constructor(field: string, message: string) {
    super("identity.mismatch", message, field);
  }
}

const ADOPT =
  "If that is deliberate, start once with --adopt-identity: the data dir then records the new identity, and replicas that no record lists are quarantined (kept), not deleted.";

/**
 * Checks this start against the identity the data dir recorded, and records it on first start. A different node id
 * or cluster, or a store that lacks this cluster's record (or holds another one of the same name) while the data
 * dir holds replicas, is refused unless `config.adoptIdentity`: under the wrong identity every replica would look
 * like one no volume lists. The cluster's uuid is ours, in the store, not etcd's cluster id, which a snapshot
 * restore changes.
 */
export async function checkIdentity(
  config: AgentConfig,
  store: MetaStore,
  keys: StoreKeys,
  hasReplicas: boolean,
): Promise<void> {
  const path = join(config.dataDir, "identity.json");
  const recorded = await readFile(path, "utf8").then(
    (text) => JSON.parse(text) as DataDirIdentity,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    },
  );
  const entry = await store.get(keys.cluster);
  // A cluster record that is not valid stops the agent (readRecord throws): its uuid is what data dirs are checked by.
  const cluster = entry ? readRecord(ClusterRecordSchema, entry) : undefined;
  if (recorded && !config.adoptIdentity) {
    if (recorded.nodeId !== config.nodeId) {
      throw new IdentityError(
        "nodeId",
        `this data dir (${config.dataDir}) belongs to node "${recorded.nodeId}", and the agent was started as node "${config.nodeId}" (--node-id; the default is the host name). Start it with --node-id ${recorded.nodeId}. ${ADOPT}`,
      );
    }
    if (recorded.cluster !== config.cluster) {
      throw new IdentityError(
        "cluster",
        `this data dir (${config.dataDir}) belongs to cluster "${recorded.cluster}", and the agent was started in cluster "${config.cluster}" (--cluster). Start it with --cluster ${recorded.cluster}. ${ADOPT}`,
      );
    }
    if (hasReplicas && cluster?.uuid !== recorded.clusterUuid) {
      const found = cluster
        ? `holds another cluster "${config.cluster}" (uuid ${cluster.uuid})`
        : `has no record of cluster "${config.cluster}"`;
      throw new IdentityError(
        "store",
        `the store ${config.store} ${found}, and this data dir holds replicas of cluster "${recorded.cluster}" (uuid ${recorded.clusterUuid}): a wrong or empty store? Point --store at that cluster's store. ${ADOPT}`,
      );
    }
  }
  const current = cluster ?? (await createClusterRecord(store, keys));
  const identity: DataDirIdentity = {
    nodeId: config.nodeId,
    cluster: config.cluster,
    clusterUuid: current.uuid,
  };
  if (JSON.stringify(identity) === JSON.stringify(recorded)) return;
  await writeFile(`${path}.tmp`, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

/** Writes the cluster's record if nobody did yet; answers the one in the store. */
async function createClusterRecord(store: MetaStore, keys: StoreKeys): Promise<ClusterRecord> {
  const record: ClusterRecord = { uuid: randomUUID(), createdAt: new Date().toISOString() };
  if (
    await store.commit(
      [{ key: keys.cluster, revision: 0 }],
      [{ put: keys.cluster, value: JSON.stringify(record) }],
    )
  )
    return record;
  const entry = await store.get(keys.cluster);
  return entry ? readRecord(ClusterRecordSchema, entry) : createClusterRecord(store, keys);
}
