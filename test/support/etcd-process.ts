import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import {
  type EtcdTls,
  etcdClientOptions,
  grantClusterAccess,
  readEtcdTls,
} from "../../agent/src/meta/index.js";
import {
  createEtcdPki,
  etcdHealthy,
  etcdServerTlsArgs,
  issueEtcdClient,
  rootTls,
} from "../../agent/src/transport/etcd-pki.js";
import { freePort, stopChild } from "./agent-process.js";

/** One cluster's access to the test etcd: its agents' client certificate, as files, PEM and agent flags. */
export interface ClusterEtcd {
  /** etcd's CA, the client certificate (CN `holdfast-<cluster>`) and its key, as PEM. */
  tls: EtcdTls;
  /** `--store etcds://... --etcd-ca ... --etcd-cert ... --etcd-key ... --cluster <cluster>` */
  agentArgs: string[];
}

/**
 * A real etcd (Debian's etcd-server) on 127.0.0.1 with its own data dir, for tests: clients over mutual TLS with
 * etcd's own CA, authentication on once a cluster is granted its role, as `holdfast dev up` runs it.
 */
export class EtcdProcess {
  private child?: ChildProcess;

  private constructor(
    readonly dir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  static async start(): Promise<EtcdProcess> {
    const etcd = new EtcdProcess(
      await mkdtemp(join(tmpdir(), "hf-etcd-")),
      await freePort(),
      await freePort(),
    );
    await createEtcdPki(etcd.pki, ["127.0.0.1"]);
    await etcd.resume();
    return etcd;
  }

  get endpoint(): string {
    return `https://127.0.0.1:${this.clientPort}`;
  }

  /** etcd's PKI directory, as `holdfast etcd init` makes it. */
  get pki(): string {
    return join(this.dir, "pki");
  }

  /** root's credentials (CN root). */
  root(): Promise<EtcdTls> {
    return rootTls(this.pki);
  }

  /**
   * Grants `cluster` its role (readwrite on `/holdfast/<cluster>/` only; authentication goes on with the first) and
   * issues its agents' client certificate.
   */
  async clusterAccess(cluster: string): Promise<ClusterEtcd> {
    await grantClusterAccess({ endpoints: [this.endpoint], tls: await this.root() }, cluster);
    const files = await issueEtcdClient(this.pki, cluster, join(this.dir, `client-${cluster}`));
    return {
      tls: await readEtcdTls(files),
      agentArgs: [
        ...["--store", `etcds://127.0.0.1:${this.clientPort}`, "--cluster", cluster],
        ...["--etcd-ca", files.etcdCa, "--etcd-cert", files.etcdCert, "--etcd-key", files.etcdKey],
      ],
    };
  }

  /** The keys under `prefix`, read as root through etcd's own client rather than through Holdfast's. */
  async keys(prefix: string): Promise<string[]> {
    return Object.keys(await this.values(prefix));
  }

  /** The keys under `prefix` and their values, read as root through etcd's own client. */
  async values(prefix: string): Promise<Record<string, string>> {
    const client = new Etcd3(etcdClientOptions({ endpoints: [this.endpoint], tls: await this.root() }));
    try {
      return await client.getAll().prefix(prefix).strings();
    } finally {
      client.close();
    }
  }

  /** Starts etcd (again, with the same data) and waits until it reports healthy. */
  async resume(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.child = spawn(
      "etcd",
      [
        "--name=test",
        `--data-dir=${join(this.dir, "data")}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        ...etcdServerTlsArgs(this.pki),
        "--log-level=error",
      ],
      { stdio: "ignore" },
    );
    const root = await this.root();
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (await etcdHealthy(this.endpoint, root)) return;
      if (this.child.exitCode !== null) throw new Error(`etcd exited with ${this.child.exitCode}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("etcd did not become healthy in 15 s");
  }

  /** Stops etcd with `signal` and waits for it to exit. */
  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    return stopChild(this.child, signal);
  }

  async destroy(): Promise<void> {
    await this.stop("SIGKILL");
    await rm(this.dir, { recursive: true, force: true });
  }
}
