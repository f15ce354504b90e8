import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:https";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { type CsiServer, serveCsi } from "./api/csi/index.js";
import { type DockerPlugin, serveDockerPlugin } from "./api/docker-plugin/index.js";
import { ApiTokens, type ApiTransport, apiTransport, createApiServer } from "./api/index.js";
import { Membership } from "./cluster/index.js";
import { type AgentConfig, splitHostPort } from "./config/index.js";
import { CertificateRenewer, joinCluster, RevocationList } from "./enrollment/index.js";
import { badRecordReporter, LocalStore, type MetaStore, openEtcdStore } from "./meta/index.js";
import { checkIdentity } from "./node-identity.js";
import { inlineIo } from "./replica/index.js";
import { certificateFacts, loadIdentity, type NodeIdentity, ReplicaServer } from "./transport/index.js";
import { VERSION } from "./version.js";
import {
  LocalReplicas,
  Recovery,
  ReplicaAccess,
  ReplicaAuthority,
  storeKeys,
  VolumeCatalog,
  VolumeService,
} from "./volumes/index.js";

/** A running node agent; `stop()` detaches its volumes and releases every host resource it holds. */
export interface RunningAgent {
  readonly url: string;
  readonly token: string;
  stop(): Promise<void>;
}

/** Reads the API token from config or `<dataDir>/token`, creating a random one (mode 0600) on first start. */
async function loadToken(config: AgentConfig): Promise<string> {
  if (config.token) return config.token;
  const path = join(config.dataDir, "token");
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const token = randomBytes(24).toString("base64url");
  await writeFile(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  return token;
}

async function openStore(config: AgentConfig, prefix: string): Promise<MetaStore> {
  if (config.store === "local") return LocalStore.open(join(config.dataDir, "meta.json"));
  return openEtcdStore(config, prefix);
}

/**
 * This node's cluster certificate, if it has one. A single-node install (local store) needs none; a node of an
 * etcd cluster without one still serves its own replicas' volumes but cannot replicate, and says so.
 */
async function loadNodeIdentity(
  config: AgentConfig,
  store: MetaStore,
  root: string,
  logger: Logger,
): Promise<NodeIdentity | undefined> {
  if (config.store === "local") return undefined;
  if (!existsSync(join(config.tlsDir, "node.crt")) && (config.joinToken || config.identityDocument)) {
    const { joinToken, identityDocument, nodeId, tlsDir } = config;
    const addresses = certificateAddresses(config);
    return joinCluster({ store, root, nodeId, addresses, tlsDir, joinToken, identityDocument, logger });
  }
  if (!existsSync(join(config.tlsDir, "node.crt"))) {
    logger.warn(
      { tlsDir: config.tlsDir },
      "no cluster certificate (ca.crt, node.crt, node.key): this node cannot replicate; join with --join-token (or --identity-document)",
    );
    return undefined;
  }
  return loadIdentity(config.tlsDir);
}

/**
 * What the node's certificate names: its replication host (peers), its API host (clients; not a wildcard address,
 * which nobody reaches it by) and the configured extra names (a load balancer's), each once.
 */
function certificateAddresses(config: AgentConfig): string[] {
  const api = splitHostPort(config.api).host;
  const wildcard = api === "0.0.0.0" || api === "::";
  return [
    ...new Set([
      splitHostPort(config.replication).host,
      ...(wildcard ? [] : [api]),
      ...config.certificateNames,
    ]),
  ];
}

/** Starts the agent: store, replication port, volume service, stale-state recovery, REST API, repair loop. */
export async function startAgent(
  config: AgentConfig,
  logger: Logger = pino({ level: config.logLevel }),
): Promise<RunningAgent> {
  // 0700 at every start, whatever the directories were: tokens, sockets, keys and replicas are in them, and
  // containers' file systems are mounted under the mount root.
  for (const dir of [config.dataDir, config.mountDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }
  for (const pool of config.pools) await mkdir(pool, { recursive: true, mode: 0o700 });
  const runDir = join(config.dataDir, "run");
  await mkdir(runDir, { recursive: true, mode: 0o700 });

  inlineIo.configure(config.inlineIo);
  const token = await loadToken(config);
  const keys = storeKeys(config.cluster);
  const store = await openStore(config, `${keys.root}/`);
  // Records that are not valid are reported once each and never acted on (meta/records.ts).
  const report = badRecordReporter(logger);
  const catalog = new VolumeCatalog(store, keys, report);
  const replicas = new LocalReplicas(config.pools);
  try {
    await checkIdentity(config, store, keys, (await replicas.list()).length > 0);
  } catch (err) {
    await store.close();
    throw err;
  }
  const identity = await loadNodeIdentity(config, store, keys.root, logger);
  // Revoked serials are refused on every handshake, both ways (enrollment/revocations.ts).
  const revocations = identity ? new RevocationList({ store, root: keys.root, report, logger }) : undefined;
  await revocations?.start();
  let transport: ApiTransport;
  try {
    transport = await apiTransport(config, identity, logger);
  } catch (err) {
    await revocations?.stop();
    await store.close();
    throw err;
  }
  const membership = new Membership({
    store,
    root: keys.root,
    leaseTtlSeconds: config.leaseTtl,
    logger,
    report,
  });
  const access = new ReplicaAccess({
    nodeId: config.nodeId,
    local: replicas,
    membership,
    identity,
    revoked: (serial) => revocations?.has(serial) ?? false,
  });
  const volumes = new VolumeService({
    nodeId: config.nodeId,
    replicas,
    access,
    runDir,
    mountDir: config.mountDir,
    replicaTimeoutMs: config.replicaTimeout * 1000,
    catalog,
    logger,
  });
  const recovery = new Recovery({
    nodeId: config.nodeId,
    store,
    keys,
    catalog,
    replicas,
    access,
    quarantineTtlMs: config.quarantineTtl * 1000,
    logger,
    report,
  });
  await volumes.recover();
  // Before the replication port opens: nothing is being created on this node yet, so what no record lists is not
  // a replica whose record is about to be written.
  await recovery.sweep(true);

  let replication: ReplicaServer | undefined;
  if (identity) {
    replication = new ReplicaServer({
      identity,
      ...splitHostPort(config.replication),
      openReplica: (id) => replicas.acquire(id),
      closeReplica: (id) => void replicas.release(id),
      createReplica: (spec) => replicas.create(spec),
      destroyReplica: async (id) => {
        await replicas.destroy(id);
        await recovery.destroyed(id);
      },
      policy: new ReplicaAuthority({ nodeId: config.nodeId, catalog }),
      revocations,
      logger,
    });
    await replication.listen();
  }
  const certNotAfter = () =>
    identity ? certificateFacts(identity.certPem).notAfter.toISOString() : undefined;
  // Renewed before expiry, swapped in place: open connections keep theirs (enrollment/renewal.ts).
  const renewer = identity
    ? new CertificateRenewer({
        store,
        root: keys.root,
        nodeId: config.nodeId,
        addresses: certificateAddresses(config),
        tlsDir: config.tlsDir,
        identity,
        onRenewed: (renewed) => {
          replication?.setIdentity(renewed);
          // The API serves the same certificate: new connections get the renewed one, open ones keep theirs.
          if (transport.https)
            (app.server as Server).setSecureContext({ cert: renewed.certPem, key: renewed.keyPem });
          void membership.update({ certNotAfter: certNotAfter() }).catch(() => undefined);
        },
        logger,
      })
    : undefined;

  const apiUrl = transport.url;
  const capacity = await replicas.capacity();
  await membership.join({
    id: config.nodeId,
    api: apiUrl,
    replication: identity ? config.replication : "",
    zone: config.zone,
    rack: config.rack,
    capacity: capacity.total,
    free: capacity.free,
    joinedAt: new Date().toISOString(),
    certNotAfter: certNotAfter(),
  });
  // Repair (resync, rebuild, replication factor) runs from the node where a volume is attached; free space is
  // refreshed for placement.
  let ticks = 0;
  const repairLoop = setInterval(() => {
    void volumes.repairAll();
    if (++ticks % 15 === 0) {
      void recovery.sweep().catch((err) => logger.warn({ err: String(err) }, "replica sweep failed"));
      void replicas
        .capacity()
        .then((c) => membership.update({ capacity: c.total, free: c.free }))
        .catch(() => undefined);
    }
  }, 2000);
  // The audit log: its own file, 0600, beside the token it protects.
  const audit = pino(
    { base: { node: config.nodeId } },
    pino.destination({ dest: join(config.dataDir, "audit.log"), mode: 0o600, sync: false }),
  );
  const app = createApiServer({
    volumes,
    tokens: new ApiTokens(store, keys.root, token, report),
    audit,
    logger,
    version: VERSION,
    requestTimeoutMs: config.apiRequestTimeout * 1000,
    maxConnections: config.apiMaxConnections,
    https: transport.https,
    cluster: {
      cluster: async () => ({ id: config.cluster, store: config.store, nodes: await membership.list() }),
      quarantine: recovery,
    },
  });
  await app.listen({ host: transport.host, port: transport.port });
  // After the API exists: a renewal swaps its certificate too.
  renewer?.start();
  // The container runtimes' doors: Docker's volume plugin and CSI, each turned off by "none".
  let plugin: DockerPlugin | undefined;
  let csi: CsiServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(repairLoop);
      renewer?.stop();
      revocations?.stop();
      await plugin?.close();
      await csi?.close();
      await app.close();
      audit.flush();
      await volumes.shutdown();
      await replication?.close();
      await membership.leave();
      await store.close();
      await rm(join(runDir, "agent.json"), { force: true });
      logger.info("agent stopped");
    })();
    return stopping;
  };
  try {
    if (config.pluginSocket !== "none") {
      plugin = await serveDockerPlugin({
        socketPath: config.pluginSocket,
        volumes,
        nodeId: config.nodeId,
        logger,
      });
    }
    if (config.csiSocket !== "none") {
      csi = await serveCsi({
        socketPath: config.csiSocket,
        volumes,
        nodeId: config.nodeId,
        zone: config.zone,
        nodes: () => membership.list(),
        version: VERSION,
        logger,
      });
    }
  } catch (err) {
    // A socket that cannot be served fails the start; what is open already would keep the process alive.
    await stop();
    throw err;
  }
  await writeFile(
    join(runDir, "agent.json"),
    JSON.stringify({ pid: process.pid, api: apiUrl, node: config.nodeId }),
  );
  logger.info({ api: apiUrl, node: config.nodeId, store: config.store }, "agent ready");

  return { url: apiUrl, token, stop };
}
