export {
  type ClusterCa,
  certificateFacts,
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  loadCa,
  loadIdentity,
  NODE_CERT_DAYS,
  NODE_URI_PREFIX,
  type NodeCertificateOptions,
  type NodeIdentity,
  peerNodeId,
  saveCa,
  saveIdentity,
  serialOf,
  serverTlsOptions,
  signNodeCertificate,
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
