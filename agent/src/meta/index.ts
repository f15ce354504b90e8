export { clusterEtcdUser, grantClusterAccess } from "./etcd-roles.js";
export {
  EtcdStore,
  type EtcdStoreOptions,
  type EtcdTls,
  etcdClientOptions,
  StoreForbiddenError,
  StoreUnavailableError,
} from "./etcd-store.js";
export { type EtcdTlsFiles, readEtcdTls } from "./etcd-tls.js";
export { LocalStore } from "./local-store.js";
export { openEtcdStore } from "./open-store.js";
export {
  type Agrees,
  BadRecordError,
  badRecordReporter,
  filedUnder,
  readRecord,
  readRecords,
} from "./records.js";
export type { Compare, MetaStore, Operation, Registration, StoredValue } from "./store.js";
