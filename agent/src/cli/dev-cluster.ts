import { spawn } from "node:child_process";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { enrollWithCa } from "../enrollment/index.js";
import { ConflictError, OperationError, SpecError } from "../errors.js";
import { grantClusterAccess, openEtcdStore } from "../meta/index.js";
import {
  createClusterCa,
  createEtcdPki,
  etcdHealthy,
  etcdServerTlsArgs,
  issueEtcdClient,
  rootTls,
  saveCa,
} from "../transport/index.js";
import { ApiClient } from "./client.js";

/** What `dev up` started, kept in `<dir>/dev.json` so that `dev stop|start|down` find it again. */
const DevState = z.object({
  etcd: z.object({ url: z.string(), peer: z.string(), pid: z.number() }),
  token: z.string(),
  /** The cluster CA's certificate, which the nodes' https APIs are trusted by (HOLDFAST_CA). */
  ca: z.string(),
  cluster: z.string(),
  /** Settings every agent of the cluster starts with, again on `dev start`. */
  settings: z.object({ leaseTtl: z.number(), replicaTimeout: z.number() }),
  nodes: z.array(
    z.object({
      id: z.string(),
      api: z.string(),
      host: z.string(),
      zone: z.string(),
      /** The node's Docker volume plugin and CSI sockets. */
      plugin: z.string(),
      csi: z.string(),
      pid: z.number(),
    }),
  ),
});
export type DevState = z.infer<typeof DevState>;

export interface DevUpOptions {
  /** Directory for etcd's and every node's data and logs. */
  dir: string;
  /** Number of agents. @default 3 */
  nodes?: number;
  /**
   * The first three octets of the loopback addresses: etcd listens on `<net>.10`, agents on `<net>.11`, `.12`, ...
   * Two dev clusters on one host (parallel tests) each take their own.
   * @default "127.0.0"
   */
  net?: string;
  /** API port every agent listens on (each on its own address). @default 9001 */
  apiPort?: number;
  /** Seconds a node's lease lives. @default 5 */
  leaseTtl?: number;
  /** Seconds a node may be down before its replicas are rebuilt elsewhere. @default 600 */
  replicaTimeout?: number;
}

const statePath = (dir: string) => join(dir, "dev.json");
const DEV_CLUSTER = "dev";

/** Whether process `pid` is alive. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `command` detached, its output appended to `log`, and returns its pid. */
async function launch(command: string, args: string[], log: string): Promise<number> {
  const out = await open(log, "a");
  const child = spawn(command, args, { detached: true, stdio: ["ignore", out.fd, out.fd] });
  await out.close();
  child.unref();
  if (child.pid === undefined) throw new OperationError("dev.spawn", `cannot start ${command}`);
  return child.pid;
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new OperationError("dev.timeout", `${what} did not come up within ${ms / 1000} s`);
}

async function readState(dir: string): Promise<DevState> {
  try {
    return DevState.parse(JSON.parse(await readFile(statePath(dir), "utf8")));
  } catch {
    throw new SpecError(
      "dir",
      `${resolve(dir)} holds no dev cluster (no valid dev.json): run 'holdfast dev up' first`,
    );
  }
}

/** etcd's PKI (its CA, server and root certificates) in a dev cluster's directory. */
const etcdPkiDir = (dir: string) => join(dir, "etcd", "pki");

/** The cluster CA's certificate: what the CLI trusts the nodes' https APIs by (HOLDFAST_CA). */
const devCaFile = (dir: string) => join(dir, "ca", "ca.crt");

/** The etcd client certificate every dev node uses (CN `holdfast-dev`, the cluster's etcd user), with etcd's CA. */
export const devEtcdClientDir = (dir: string) => join(dir, "etcd", "client");

/** The agent command line of one dev node: this same program, run by this same Node. */
function agentArgs(dir: string, state: DevState, node: DevState["nodes"][number]) {
  const nodeDir = join(dir, node.id);
  const client = devEtcdClientDir(dir);
  return [
    ...process.execArgv,
    process.argv[1] as string,
    "agent",
    `--data-dir=${join(nodeDir, "data")}`,
    `--store=etcds://${new URL(state.etcd.url).host}`,
    `--etcd-ca=${join(client, "ca.crt")}`,
    `--etcd-cert=${join(client, "client.crt")}`,
    `--etcd-key=${join(client, "client.key")}`,
    `--cluster=${state.cluster}`,
    `--node-id=${node.id}`,
    `--api=${node.host}:${new URL(node.api).port}`,
    `--zone=${node.zone}`,
    `--mount-dir=${join(nodeDir, "mounts")}`,
    `--plugin-socket=${node.plugin}`,
    `--csi-socket=${node.csi}`,
    `--lease-ttl=${state.settings.leaseTtl}`,
    `--replica-timeout=${state.settings.replicaTimeout}`,
    "--log-level=info",
  ];
}

async function startNode(dir: string, state: DevState, node: DevState["nodes"][number]): Promise<number> {
  await mkdir(join(dir, node.id, "data"), { recursive: true, mode: 0o700 });
  // Every dev node shares one token, so one HOLDFAST_TOKEN works against all of them.
  await writeFile(join(dir, node.id, "data", "token"), `${state.token}\n`, { mode: 0o600 });
  const pid = await launch(process.execPath, agentArgs(dir, state, node), join(dir, node.id, "agent.log"));
  await waitFor(`node ${node.id} (${node.api})`, async () => {
    if (!alive(pid))
      throw new OperationError("dev.node", `node ${node.id} exited: see ${join(dir, node.id, "agent.log")}`);
    await new ApiClient({ url: node.api, token: state.token, caFile: state.ca }).request("GET", "cluster");
    return true;
  });
  return pid;
}

/**
 * Starts a real etcd and `nodes` agents on loopback addresses, each with its own data dir and zone. etcd serves
 * clients over mutual TLS with authentication on, and the cluster's agents have a role limited to its prefix.
 */
export async function devUp(options: DevUpOptions): Promise<DevState> {
  const dir = resolve(options.dir);
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 9) throw new SpecError("nodes", "must be 1 to 9");
  const existing = await readState(dir).catch(() => undefined);
  if (existing && alive(existing.etcd.pid)) {
    throw new ConflictError(
      "dev.running",
      `a dev cluster is already running in ${dir}: 'holdfast dev down --dir ${dir}' first`,
    );
  }
  const net = options.net ?? "127.0.0";
  if (!/^127\.\d{1,3}\.\d{1,3}$/.test(net) || net.split(".").some((o) => Number(o) > 255)) {
    throw new SpecError(
      "net",
      `must be the first three octets of a loopback address, e.g. 127.0.0, not "${net}"`,
    );
  }
  await mkdir(join(dir, "etcd"), { recursive: true, mode: 0o700 });
  const etcdUrl = `https://${net}.10:2379`;
  // Peers are one member on loopback here; a real cluster's peer URLs take TLS as well (etcd's --peer-* flags).
  const peer = `http://${net}.10:2380`;
  await createEtcdPki(etcdPkiDir(dir), [`${net}.10`]);
  const root = await rootTls(etcdPkiDir(dir));
  const etcdPid = await launch(
    "etcd",
    [
      ...etcdServerTlsArgs(etcdPkiDir(dir)),
      "--name=dev",
      `--data-dir=${join(dir, "etcd", "data")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=dev=${peer}`,
      "--log-level=warn",
    ],
    join(dir, "etcd", "etcd.log"),
  ).catch((err) => {
    throw new OperationError(
      "dev.etcd",
      `cannot start etcd (Debian package etcd-server): ${String(err)}`,
      err,
    );
  });
  await waitFor(`etcd at ${etcdUrl}`, async () => {
    if (!alive(etcdPid))
      throw new OperationError("dev.etcd", `etcd exited: see ${join(dir, "etcd", "etcd.log")}`);
    return etcdHealthy(etcdUrl, root);
  });
  const state: DevState = {
    etcd: { url: etcdUrl, peer, pid: etcdPid },
    token: Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url"),
    ca: devCaFile(dir),
    cluster: DEV_CLUSTER,
    settings: { leaseTtl: options.leaseTtl ?? 5, replicaTimeout: options.replicaTimeout ?? 600 },
    nodes: Array.from({ length: count }, (_, i) => {
      const host = `${net}.${11 + i}`;
      return {
        id: `node${i + 1}`,
        host,
        api: `https://${host}:${options.apiPort ?? 9001}`,
        zone: `zone-${String.fromCharCode(97 + i)}`,
        plugin: join(dir, `node${i + 1}`, "plugin.sock"),
        csi: join(dir, `node${i + 1}`, "csi.sock"),
        pid: 0,
      };
    }),
  };
  await writeFile(statePath(dir), JSON.stringify(state, null, 2), { mode: 0o600 });
  await grantClusterAccess({ endpoints: [etcdUrl], tls: root }, state.cluster);
  const etcdTls = await issueEtcdClient(etcdPkiDir(dir), state.cluster, devEtcdClientDir(dir));
  // One CA for the cluster; each node enrolls through the signer's own path (a join token, its CSR, a signature), so
  // its certificate is on record and `cluster revoke --node` works on it.
  const ca = await createClusterCa({ cluster: state.cluster });
  await saveCa(dirname(state.ca), ca);
  const prefix = `/holdfast/${state.cluster}`;
  const store = await openEtcdStore({ store: `etcds://${net}.10:2379`, etcdTls }, `${prefix}/`);
  try {
    for (const node of state.nodes) {
      const tlsDir = join(dir, node.id, "data", "tls");
      // A year, not the 7 days a signer gives: a dev cluster runs no signer for its nodes to renew with.
      const addresses = [node.host];
      await enrollWithCa({ store, root: prefix, ca, nodeId: node.id, addresses, tlsDir, validDays: 365 });
    }
  } finally {
    await store.close();
  }
  for (const node of state.nodes) {
    node.pid = await startNode(dir, state, node);
    await writeFile(statePath(dir), JSON.stringify(state, null, 2), { mode: 0o600 });
  }
  return state;
}

function findNode(state: DevState, nodeId: string): DevState["nodes"][number] {
  const node = state.nodes.find((n) => n.id === nodeId);
  if (!node) {
    throw new SpecError(
      "node",
      `no node "${nodeId}" in this dev cluster (${state.nodes.map((n) => n.id).join(", ")})`,
    );
  }
  return node;
}

/** Stops one node (its data stays), with SIGTERM or, to simulate a crash, SIGKILL. */
export async function devStop(
  dir: string,
  nodeId: string,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<DevState> {
  const state = await readState(dir);
  const node = findNode(state, nodeId);
  if (alive(node.pid)) process.kill(node.pid, signal);
  await waitFor(`node ${nodeId} to exit`, async () => !alive(node.pid));
  return state;
}

/** Starts a stopped node again, with its data. */
export async function devStart(dir: string, nodeId: string): Promise<DevState> {
  const state = await readState(dir);
  const node = findNode(state, nodeId);
  if (alive(node.pid))
    throw new ConflictError("dev.node_running", `node ${nodeId} is already running (pid ${node.pid})`);
  node.pid = await startNode(resolve(dir), state, node);
  await writeFile(statePath(dir), JSON.stringify(state, null, 2), { mode: 0o600 });
  return state;
}

/** Stops every agent (they detach and unmount their volumes), then etcd, and removes the directory. */
export async function devDown(dir: string): Promise<void> {
  const state = await readState(dir);
  for (const node of state.nodes) if (alive(node.pid)) process.kill(node.pid, "SIGTERM");
  await waitFor("the nodes to stop", async () => state.nodes.every((n) => !alive(n.pid)), 30_000).catch(
    () => {
      for (const node of state.nodes) if (alive(node.pid)) process.kill(node.pid, "SIGKILL");
    },
  );
  if (alive(state.etcd.pid)) process.kill(state.etcd.pid, "SIGTERM");
  await waitFor("etcd to stop", async () => !alive(state.etcd.pid), 10_000).catch(() =>
    process.kill(state.etcd.pid, "SIGKILL"),
  );
  await rm(resolve(dir), { recursive: true, force: true });
}
