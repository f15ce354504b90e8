export {
  type ClusterCa,
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  loadCa,
  loadIdentity,
  NODE_URI_PREFIX,
  type NodeIdentity,
  peerNodeId,
  saveCa,
  saveIdentity,
  serverTlsOptions,
  verifiedPeerNodeId,
} from "./cluster-ca.js";
export {
  createEtcdPki,
  etcdHealthy,
  etcdServerTlsArgs,
  issueEtcdClient,
  rootTls,
} from "./etcd-pki.js";
export { RemoteReplica, type RemoteReplicaOptions } from "./remote-replica.js";
export { type ReplicaPolicy, ReplicaServer, type ReplicaServerOptions } from "./replica-server.js";
