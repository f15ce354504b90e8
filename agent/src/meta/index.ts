export { EtcdStore, type EtcdStoreOptions, StoreUnavailableError } from "./etcd-store.js";
export { LocalStore } from "./local-store.js";
export {
  type Agrees,
  BadRecordError,
  badRecordReporter,
  filedUnder,
  readRecord,
  readRecords,
} from "./records.js";
export type { Compare, MetaStore, Operation, Registration, StoredValue } from "./store.js";
