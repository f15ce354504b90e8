import { EtcdStore } from "./etcd-store.js";
import { type EtcdTlsFiles, readEtcdTls } from "./etcd-tls.js";

/**
 * Opens the etcd a store setting names (`etcds://HOST:PORT,...`, or `etcd://` in a lab), limited to `prefix`: the
 * agent's and the enrollment commands' one way in.
 */
export async function openEtcdStore(
  settings: { store: string; etcdTls?: EtcdTlsFiles },
  prefix: string,
): Promise<EtcdStore> {
  const endpoints = settings.store
    .slice(settings.store.indexOf("://") + 3)
    .split(",")
    .map((hostPort) => `${settings.etcdTls ? "https" : "http"}://${hostPort}`);
  const tls = settings.etcdTls && (await readEtcdTls(settings.etcdTls));
  return EtcdStore.open({ endpoints, prefix, tls });
}
