import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { clusterEtcdUser, type EtcdTls, type EtcdTlsFiles } from "../meta/index.js";
import { createClusterCa, issueNodeIdentity, saveCa } from "./cluster-ca.js";

/**
 * etcd's own PKI (`holdfast etcd init`, `holdfast dev up`, tests): a CA of its own, not the cluster CA, so that a
 * node certificate is no etcd credential nor the other way round; the members' certificate (server and peer); root's
 * client certificate, to set up roles with; and one client certificate per Holdfast cluster, whose CN is that
 * cluster's etcd user. The CA key stays with whoever runs etcd: no Holdfast node needs it.
 */
const VALID_DAYS = 365;

async function writePair(dir: string, name: string, pair: { certPem: string; keyPem: string }) {
  await writeFile(join(dir, `${name}.crt`), pair.certPem, { mode: 0o644 });
  await writeFile(join(dir, `${name}.key`), pair.keyPem, { mode: 0o600 });
}

/**
 * Creates etcd's CA, the members' certificate (for every address in `hosts`: clients and peers reach members by
 * them), and root's client certificate, in `dir`.
 */
export async function createEtcdPki(dir: string, hosts: string[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createClusterCa({ cluster: "etcd" });
  await saveCa(dir, ca);
  await writePair(
    dir,
    "server",
    await issueNodeIdentity(ca, { nodeId: "etcd", addresses: hosts, validDays: VALID_DAYS }),
  );
  await writePair(
    dir,
    "root",
    await issueNodeIdentity(ca, { nodeId: "root", addresses: [], validDays: VALID_DAYS }),
  );
}

/** The flags that make etcd serve clients over mutual TLS with the PKI in `dir` (peers: the `--peer-*` twins). */
export function etcdServerTlsArgs(dir: string): string[] {
  return [
    `--cert-file=${join(dir, "server.crt")}`,
    `--key-file=${join(dir, "server.key")}`,
    `--trusted-ca-file=${join(dir, "ca.crt")}`,
    "--client-cert-auth",
  ];
}

/** root's credentials, to grant roles with. */
export async function rootTls(dir: string): Promise<EtcdTls> {
  return {
    caPem: await readFile(join(dir, "ca.crt"), "utf8"),
    certPem: await readFile(join(dir, "root.crt"), "utf8"),
    keyPem: await readFile(join(dir, "root.key"), "utf8"),
  };
}

/**
 * Issues the etcd client certificate of `cluster`'s agents (CN `holdfast-<cluster>`) and writes it with etcd's CA
 * to `out` as ca.crt, client.crt, client.key: the files an agent's etcdCa, etcdCert and etcdKey name.
 */
export async function issueEtcdClient(dir: string, cluster: string, out: string): Promise<EtcdTlsFiles> {
  const ca = {
    certPem: await readFile(join(dir, "ca.crt"), "utf8"),
    keyPem: await readFile(join(dir, "ca.key"), "utf8"),
  };
  const client = await issueNodeIdentity(ca, {
    nodeId: clusterEtcdUser(cluster),
    addresses: [],
    validDays: VALID_DAYS,
  });
  await mkdir(out, { recursive: true, mode: 0o700 });
  await writeFile(join(out, "ca.crt"), ca.certPem, { mode: 0o644 });
  await writePair(out, "client", client);
  return { etcdCa: join(out, "ca.crt"), etcdCert: join(out, "client.crt"), etcdKey: join(out, "client.key") };
}

/** Whether etcd at `url` (https) answers its health check as healthy, asked with `tls`. */
export function etcdHealthy(url: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/health`,
      { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, timeout: 2000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve(/"health":\s*"true"/.test(body)));
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}
