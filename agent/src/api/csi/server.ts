import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type GrpcObject,
  loadPackageDefinition,
  Server,
  ServerCredentials,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { Logger } from "pino";
import type { NodeStatus } from "../../cluster/index.js";
import type { VolumeService } from "../../volumes/index.js";
import { claimSocket, restrictSocket } from "../docker-plugin/index.js";
import { controllerService } from "./controller.js";
import { identityService } from "./identity.js";
import { nodeService } from "./node.js";
import { CSI_PROTO } from "./proto/csi-proto.js";

export interface CsiOptions {
  /** Unix socket to serve on (the kubelet and the CSI sidecars connect to it). */
  socketPath: string;
  volumes: VolumeService;
  /** This node's id: what NodeGetInfo reports and where the Node service mounts. */
  nodeId: string;
  /** This node's zone: its topology segment. */
  zone: string;
  /** The cluster's nodes, for topology, liveness and capacity. */
  nodes: () => Promise<NodeStatus[]>;
  /** Reported as the plugin's vendor_version. */
  version: string;
  logger: Logger;
}

/** A running CSI server. */
export interface CsiServer {
  close(): Promise<void>;
}

/** How the handlers see messages (see messages.ts). */
const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** The csi.v1 package, loaded from the embedded csi.proto: a few tenths of a second, once per start. */
async function loadCsiPackage(): Promise<GrpcObject> {
  const dir = await mkdtemp(join(tmpdir(), "holdfast-csi-"));
  try {
    await writeFile(join(dir, "csi.proto"), CSI_PROTO);
    const root = loadPackageDefinition(loadSync(join(dir, "csi.proto"), LOADER_OPTIONS));
    return (root.csi as GrpcObject).v1 as GrpcObject;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Serves CSI v1 (Identity, Controller and Node) on a unix socket, over the volume service. Methods Holdfast does
 * not offer (snapshots, group snapshots, volume stats, modify) answer UNIMPLEMENTED, which grpc-js does for any
 * method left out of a service implementation.
 */
export async function serveCsi(options: CsiOptions): Promise<CsiServer> {
  const { socketPath, volumes, nodeId, logger } = options;
  const log = logger.child({ api: "csi" });
  const csi = await loadCsiPackage();
  const service = (name: string) => (csi[name] as ServiceClientConstructor).service;

  const server = new Server();
  server.addService(service("Identity"), identityService(options.version, log));
  server.addService(
    service("Controller"),
    controllerService({ volumes, nodeId, nodes: options.nodes, logger: log }),
  );
  server.addService(service("Node"), nodeService({ volumes, nodeId, zone: options.zone, logger: log }));

  await claimSocket(socketPath, "csiSocket");
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  await restrictSocket(socketPath);
  logger.info({ socket: socketPath }, "csi plugin ready");
  return {
    close: async () => {
      // Calls in flight finish (a kubelet retries anything cut short), but a stuck one does not hold the stop.
      const forced = setTimeout(() => server.forceShutdown(), 10_000);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      clearTimeout(forced);
      await rm(socketPath, { force: true });
    },
  };
}
