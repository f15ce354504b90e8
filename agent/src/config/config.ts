import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { SpecError } from "../errors.js";
import type { EtcdTlsFiles } from "../meta/index.js";

/** A cluster, node, zone or rack name; node ids in store records are checked against the same. */
export const Name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "must be 1-63 letters, digits, '_', '-' or '.'");

/** HOST:PORT: a name, an IPv4 or a bracketed IPv6 address, and a port; node records in the store are checked by it. */
export const HostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/, 'must be HOST:PORT, e.g. "127.0.0.1:9001"')
  .refine((v) => splitHostPort(v).port <= 65535, "port must be at most 65535");

/** The host and port of a HOST:PORT value: the one parser, an IPv6 host without its brackets. */
export function splitHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(":");
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(value.slice(at + 1)) };
}

/** HOST:PORT from a host and a port, an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A unix socket path, or "none"; sockaddr_un holds 107 bytes and a NUL. */
const SocketPath = z
  .string()
  .min(1)
  .refine((v) => Buffer.byteLength(v) <= 107, "must be at most 107 bytes (the limit of a unix socket path)");

/** Agent settings: the `--config` JSON file, then flags on top. One schema validates both. */
export const AgentConfigSchema = z.object({
  /** Directory for the agent's own state: metadata (local store), token, sockets. */
  dataDir: z
    .string({
      error: (i) => (i.input === undefined ? "is required: the directory for the agent's state" : undefined),
    })
    .min(1),
  /**
   * Metadata store: `local` (single node), `etcds://HOST:PORT[,HOST:PORT]` (etcd over mutual TLS, with `etcdCa`,
   * `etcdCert` and `etcdKey`), or `etcd://...` (plain HTTP: only with `etcdPlainHttp`).
   * @default "local"
   */
  store: z
    .string()
    .regex(/^(local|etcds?:\/\/[^,]+(,[^,]+)*)$/, 'must be "local" or "etcds://HOST:PORT[,HOST:PORT...]"')
    .default("local"),
  /** PEM file of the CA that signed etcd's server certificates. @default - none: required with etcds:// */
  etcdCa: z.string().min(1).optional(),
  /** PEM file of this node's etcd client certificate; its CN is the etcd user (`holdfast-<cluster>`). @default - none: required with etcds:// */
  etcdCert: z.string().min(1).optional(),
  /** PEM file of the etcd client certificate's key (keep it 0600). @default - none: required with etcds:// */
  etcdKey: z.string().min(1).optional(),
  /**
   * Allow `etcd://`: plain HTTP to etcd, where anyone on the path reads every record and anyone who reaches etcd
   * writes them. For a lab, never for a cluster that holds data that matters.
   * @default false
   */
  etcdPlainHttp: z.boolean().default(false),
  /** The cluster's name: its keys live under `/holdfast/<cluster>/` in the store. @default "default" */
  cluster: Name.default("default"),
  /** This node's id in the cluster. @default the host name */
  nodeId: Name.optional(),
  /** Address the REST API listens on. @default "127.0.0.1:9001" */
  api: HostPort.default("127.0.0.1:9001"),
  /**
   * Serve the API over plain HTTP on a non-loopback address when the node has no cluster certificate: a lab, where
   * tokens may cross the network in clear. With a certificate the API is HTTPS whatever this says. @default false
   */
  apiPlainHttp: z.boolean().default(false),
  /** Address of the replication port, where other nodes' engines reach this node's replicas over mutual TLS. @default - the API's host, the API's port + 1 */
  replication: HostPort.optional(),
  /** Directory with this node's cluster certificate: ca.crt, node.crt, node.key (from `holdfast cluster issue`). @default - `<dataDir>/tls` */
  tlsDir: z.string().min(1).optional(),
  /**
   * A one-time join token (`hfj1.…`, from `holdfast cluster join-token create`), or the path of a file holding one:
   * a node without a certificate in `tlsDir` asks the signer for one with it. Never logged.
   */
  joinToken: z.string().min(1).optional(),
  /**
   * A file holding this instance's cloud identity document as `{"document": ..., "signature": ...}` (on AWS, IMDS's
   * instance-identity document and signature, written by the user data): without a certificate, and without a
   * join token, the node asks the signer with it.
   */
  identityDocument: z.string().min(1).optional(),
  /**
   * More names (DNS names or IPs) this node's certificate is asked for, besides its replication and API hosts: names
   * clients reach the API by, such as a load balancer's.
   * @default []
   */
  certificateNames: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z0-9.:-]{1,253}$/, "must be a DNS name or an IP address")
        .max(253),
    )
    .max(8, "at most 8 names")
    .default([]),
  /** Seconds a replica's node may stay down before the replica is rebuilt on another node. @default 600 */
  replicaTimeout: z.number().int().min(1, "must be at least 1 second").default(600),
  /**
   * Seconds a quarantined replica (one no volume listed when its node started) is kept before it is destroyed;
   * `holdfast node quarantine purge` destroys it sooner. @default 604800 (7 days)
   */
  quarantineTtl: z.number().int().min(60, "must be at least 60 seconds").default(604_800),
  /**
   * Start even though the node id, the cluster or the store differs from what the data dir recorded, and record
   * the new identity: replicas no record lists are then quarantined. For one deliberate start, not a config file.
   * @default false
   */
  adoptIdentity: z.boolean().default(false),
  /** Storage pools: directories that hold replicas. @default - `<dataDir>/pool` */
  pools: z.array(z.string().min(1)).default([]),
  /** The API token. @default - a random token, written to `<dataDir>/token` (mode 0600) on first start */
  token: z.string().min(16, "must be at least 16 characters").optional(),
  /** Failure domain: zone. @default "default" */
  zone: Name.default("default"),
  /** Failure domain: rack. @default "default" */
  rack: Name.default("default"),
  /**
   * The mount root: where `volume mount` mounts a volume when no path is given, and the only place a path given to the
   * REST API may resolve to (CSI's paths are kubelet's, over its host-local socket). Made mode 0700 at every start.
   * @default "/var/lib/holdfast/mounts"
   */
  mountDir: z.string().min(1).default("/var/lib/holdfast/mounts"),
  /** Seconds a client has to send a whole API request, headers and body; a slower one is cut off. @default 30 */
  apiRequestTimeout: z
    .number()
    .int()
    .min(1, "must be at least 1 second")
    .max(600, "must be at most 600 seconds")
    .default(30),
  /**
   * API connections open at once; past it a new one is closed at once, so idle or slow clients cannot take the file
   * descriptors the volumes' I/O needs.
   * @default 256
   */
  apiMaxConnections: z
    .number()
    .int()
    .min(8, "must be at least 8")
    .max(65_536, "must be at most 65536")
    .default(256),
  /** Serve small page-aligned reads and writes from the event loop, not the thread pool (faster on few cores). @default true */
  inlineIo: z.boolean().default(true),
  /** Seconds this node's lease lives without a keep-alive: how long a dead node still counts as up. @default 5 */
  leaseTtl: z
    .number()
    .int()
    .min(2, "must be at least 2 seconds")
    .max(300, "must be at most 300 seconds")
    .default(5),
  /**
   * Unix socket of the Docker volume plugin (driver `holdfast`, also what Marathon's `dvdi` volumes use); "none"
   * turns it off.
   * @default "/run/docker/plugins/holdfast.sock"
   */
  pluginSocket: SocketPath.default("/run/docker/plugins/holdfast.sock"),
  /** Unix socket of the CSI plugin (Identity, Controller, Node); "none" turns it off. @default "/run/holdfast/csi.sock" */
  csiSocket: SocketPath.default("/run/holdfast/csi.sock"),
  /** Log level. @default "info" */
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** The agent's settings after validation, with every default filled in and paths made absolute. */
export interface AgentConfig
  extends Omit<z.output<typeof AgentConfigSchema>, "nodeId" | "replication" | "tlsDir"> {
  /** etcd's TLS files, made absolute: set exactly when the store is etcds://. */
  etcdTls?: EtcdTlsFiles;
  nodeId: string;
  replication: string;
  tlsDir: string;
}

/**
 * Builds the agent configuration from a JSON file (optional) and flags; flags win. Any problem is a
 * SpecError naming the setting, e.g. `api: must be HOST:PORT`.
 */
export async function loadAgentConfig(options: {
  file?: string;
  flags: Partial<AgentConfigInput>;
}): Promise<AgentConfig> {
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = await readFile(options.file, "utf8");
    } catch (err) {
      throw new SpecError("config", `cannot read ${options.file}: ${(err as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text);
    } catch (err) {
      throw new SpecError("config", `${options.file} is not valid JSON: ${(err as Error).message}`);
    }
    // Chef node JSON (`chef-client -j`, rendered by OnPremNodeGroup) holds this config under "holdfast", beside
    // the cookbook's own keys: the same file configures the cookbook and the agent.
    const chef = fromFile.holdfast;
    if (typeof chef === "object" && chef !== null && !Array.isArray(chef))
      fromFile = chef as Record<string, unknown>;
  }
  const flags = Object.fromEntries(Object.entries(options.flags).filter(([, v]) => v !== undefined));
  const parsed = AgentConfigSchema.safeParse({ ...fromFile, ...flags });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") || "config";
    throw new SpecError(field, issue?.message ?? "invalid");
  }
  const config = parsed.data;
  const etcdTls = checkStoreSecurity(config);
  const dataDir = resolve(config.dataDir);
  const api = splitHostPort(config.api);
  return {
    ...config,
    etcdTls,
    dataDir,
    replication: config.replication ?? joinHostPort(api.host, api.port + 1),
    tlsDir: resolve(config.tlsDir ?? join(dataDir, "tls")),
    nodeId: config.nodeId ?? hostname().split(".")[0] ?? "node",
    pools: (config.pools.length > 0 ? config.pools : [join(dataDir, "pool")]).map((p) => resolve(p)),
    mountDir: resolve(config.mountDir),
  };
}

const ETCD_TLS_FILES = ["etcdCa", "etcdCert", "etcdKey"] as const;

const StoreSettingsSchema = AgentConfigSchema.pick({
  store: true,
  etcdCa: true,
  etcdCert: true,
  etcdKey: true,
  etcdPlainHttp: true,
});

/** How to reach the store, checked: its URL, and etcd's TLS files (absolute) when it is etcds://. */
export interface StoreSettings {
  store: string;
  etcdTls?: EtcdTlsFiles;
}

/**
 * The store settings of a command that is not the agent (`cluster sign`, `join-token`, `revoke`), checked by the same
 * schema and rules as the agent's: an error names the setting.
 */
export function loadStoreSettings(flags: Partial<z.input<typeof StoreSettingsSchema>>): StoreSettings {
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const parsed = StoreSettingsSchema.safeParse(given);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SpecError(issue?.path.join(".") || "store", issue?.message ?? "invalid");
  }
  return { store: parsed.data.store, etcdTls: checkStoreSecurity(parsed.data) };
}

/** etcd over mutual TLS, or plain HTTP only when the config says it is a lab. */
function checkStoreSecurity(config: z.output<typeof StoreSettingsSchema>): EtcdTlsFiles | undefined {
  const given = ETCD_TLS_FILES.filter((f) => config[f] !== undefined);
  if (config.store.startsWith("etcds://")) {
    const { etcdCa, etcdCert, etcdKey } = config;
    if (etcdCa && etcdCert && etcdKey)
      return { etcdCa: resolve(etcdCa), etcdCert: resolve(etcdCert), etcdKey: resolve(etcdKey) };
    throw new SpecError(
      ETCD_TLS_FILES.find((f) => config[f] === undefined),
      "is required with an etcds:// store: etcd's CA (etcdCa), and the client certificate (etcdCert) and key (etcdKey) that etcd authenticates this node's cluster by",
    );
  }
  const first = given[0];
  if (first)
    throw new SpecError(first, `is for etcd over TLS, and the store is ${config.store}: use etcds://`);
  if (config.store.startsWith("etcd://") && !config.etcdPlainHttp)
    throw new SpecError(
      "store",
      "etcd:// is plain HTTP: every record crosses the network in clear and etcd cannot tell this cluster's agents from anyone else. Use etcds:// with etcdCa, etcdCert and etcdKey (flags --etcd-ca, --etcd-cert, --etcd-key), or set etcdPlainHttp (--etcd-plain-http) for a lab",
    );
  return undefined;
}
