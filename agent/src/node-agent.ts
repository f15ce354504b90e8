import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { serveCsi } from "./api/csi/index.js";
import { serveDockerPlugin } from "./api/docker-plugin/index.js";
import { createApiServer } from "./api/index.js";
import { Membership } from "./cluster/index.js";
import type { AgentConfig } from "./config/index.js";
import { EtcdStore, LocalStore, type MetaStore } from "./meta/index.js";
import { inlineIo } from "./replica/index.js";
import { storeKeys, VolumeCatalog, VolumeService } from "./volumes/index.js";

export const VERSION = "0.1.0";

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

async function openStore(config: AgentConfig): Promise<MetaStore> {
  if (config.store === "local") return LocalStore.open(join(config.dataDir, "meta.json"));
  const endpoints = config.store
    .slice("etcd://".length)
    .split(",")
    .map((hostPort) => `http://${hostPort}`);
  return EtcdStore.open({ endpoints });
}

/** Starts the agent: store, volume service, stale-state recovery, REST API. */
export async function startAgent(
  config: AgentConfig,
  logger: Logger = pino({ level: config.logLevel }),
): Promise<RunningAgent> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  for (const pool of config.pools) await mkdir(pool, { recursive: true, mode: 0o700 });
  const runDir = join(config.dataDir, "run");
  await mkdir(runDir, { recursive: true, mode: 0o700 });

  inlineIo.configure(config.inlineIo);
  const token = await loadToken(config);
  const store = await openStore(config);
  const keys = storeKeys(config.cluster);
  const catalog = new VolumeCatalog(store, keys);
  const volumes = new VolumeService({
    nodeId: config.nodeId,
    pools: config.pools,
    runDir,
    mountDir: config.mountDir,
    catalog,
    logger,
  });
  await volumes.recover();

  const apiUrl = `http://${config.api}`;
  const membership = new Membership({
    store,
    root: keys.root,
    leaseTtlSeconds: config.leaseTtl,
    logger,
  });
  const capacity = await volumes.capacity();
  await membership.join({
    id: config.nodeId,
    api: apiUrl,
    zone: config.zone,
    rack: config.rack,
    capacity: capacity.total,
    free: capacity.free,
    joinedAt: new Date().toISOString(),
  });
  const app = createApiServer({
    volumes,
    token,
    logger,
    version: VERSION,
    cluster: {
      cluster: async () => ({ id: config.cluster, store: config.store, nodes: await membership.list() }),
    },
  });
  const separator = config.api.lastIndexOf(":");
  await app.listen({
    host: config.api.slice(0, separator).replace(/^\[|\]$/g, ""),
    port: Number(config.api.slice(separator + 1)),
  });
  // The container runtimes' doors: Docker's volume plugin and CSI, each turned off by "none".
  const plugin =
    config.pluginSocket === "none"
      ? undefined
      : await serveDockerPlugin({ socketPath: config.pluginSocket, volumes, nodeId: config.nodeId, logger });
  const csi =
    config.csiSocket === "none"
      ? undefined
      : await serveCsi({
          socketPath: config.csiSocket,
          volumes,
          nodeId: config.nodeId,
          zone: config.zone,
          nodes: () => membership.list(),
          version: VERSION,
          logger,
        });
  await writeFile(
    join(runDir, "agent.json"),
    JSON.stringify({ pid: process.pid, api: apiUrl, node: config.nodeId }),
  );
  logger.info({ api: apiUrl, node: config.nodeId, store: config.store }, "agent ready");

  let stopping: Promise<void> | undefined;
  return {
    url: apiUrl,
    token,
    stop: () => {
      stopping ??= (async () => {
        await plugin?.close();
        await csi?.close();
        await app.close();
        await volumes.shutdown();
        await membership.leave();
        await store.close();
        await rm(join(runDir, "agent.json"), { force: true });
        logger.info("agent stopped");
      })();
      return stopping;
    },
  };
}
