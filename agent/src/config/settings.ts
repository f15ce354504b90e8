import { z } from "zod";
import { HostPort, Name, SocketPath } from "./values.js";

/**
 * Who sets a setting. `node`: each host its own (identity, addresses, disks). `cluster`: the cluster's wiring (store,
 * etcd credentials, name, token), which the constructs derive from the cluster they declare. `shared`: the same on
 * every node, a construct prop (`agent`) passed through as given to Chef's node JSON and the AWS user data. `start`:
 * one start of the agent, a flag only, never kept in a config file.
 */
export type SettingScope = "node" | "cluster" | "shared" | "start";

/** One agent setting, everything about it in one place. */
export interface Setting<S extends z.ZodType = z.ZodType> {
  /** Validation, its error messages and the default. */
  readonly schema: S;
  /** One line for `holdfast agent --help` and docs/agent-settings.md. */
  readonly doc: string;
  readonly scope: SettingScope;
  /** The default in words, where the schema cannot hold it (it depends on other settings). @default - the schema's */
  readonly defaultText?: string;
  /**
   * The flag's name without `--`, and the name of its value in help. A setting with no flag says why instead.
   * @default - the setting's name in kebab case, and `<value>`
   */
  readonly flag?: { readonly name?: string; readonly value?: string } | { readonly none: string };
}

/** A row, keeping its scope's literal type so that SharedSettingName can select by it. */
const setting = <S extends z.ZodType, C extends SettingScope>(
  row: Setting<S> & { readonly scope: C },
): Setting<S> & { readonly scope: C } => row;

/**
 * THE table of agent settings, in the order help and docs list them. The config schema (file and flags), the
 * agent's flags and their help, docs/agent-settings.md and the settings the constructs pass through are all
 * derived from it: adding a setting is one row here.
 */
export const AGENT_SETTINGS = {
  dataDir: setting({
    schema: z
      .string({
        error: (i) =>
          i.input === undefined ? "is required: the directory for the agent's state" : undefined,
      })
      .min(1),
    doc: "Directory for the agent's own state: metadata (local store), token, sockets.",
    scope: "shared",
    flag: { value: "<dir>" },
  }),
  store: setting({
    schema: z
      .string()
      .regex(/^(local|etcds?:\/\/[^,]+(,[^,]+)*)$/, 'must be "local" or "etcds://HOST:PORT[,HOST:PORT...]"')
      .default("local"),
    doc: 'Metadata store: "local" (one node), etcds://HOST:PORT[,HOST:PORT] (etcd over mutual TLS), or etcd://... (plain HTTP: only with etcdPlainHttp).',
    scope: "cluster",
  }),
  etcdCa: setting({
    schema: z.string().min(1).optional(),
    doc: "PEM file of the CA that signed etcd's server certificates; required with etcds://.",
    scope: "cluster",
    flag: { value: "<file>" },
  }),
  etcdCert: setting({
    schema: z.string().min(1).optional(),
    doc: "PEM file of the etcd client certificate; its CN is the etcd user (holdfast-<cluster>). Required with etcds://.",
    scope: "cluster",
    flag: { value: "<file>" },
  }),
  etcdKey: setting({
    schema: z.string().min(1).optional(),
    doc: "PEM file of the etcd client certificate's key (keep it 0600); required with etcds://.",
    scope: "cluster",
    flag: { value: "<file>" },
  }),
  etcdPlainHttp: setting({
    schema: z.boolean().default(false),
    doc: "Allow etcd:// (plain HTTP: anyone on the path reads every record, anyone who reaches etcd writes them): a lab only.",
    scope: "cluster",
  }),
  cluster: setting({
    schema: Name.default("default"),
    doc: "The cluster's name: its keys live under /holdfast/<cluster>/ in the store.",
    scope: "cluster",
    flag: { value: "<name>" },
  }),
  nodeId: setting({
    schema: Name.optional(),
    doc: "This node's id in the cluster.",
    scope: "node",
    defaultText: "the host name",
    flag: { value: "<id>" },
  }),
  api: setting({
    schema: HostPort.default("127.0.0.1:9001"),
    doc: "Address the REST API listens on.",
    scope: "node",
    flag: { value: "<host:port>" },
  }),
  apiPlainHttp: setting({
    schema: z.boolean().default(false),
    doc: "Without a cluster certificate, serve the API over plain HTTP beyond loopback (a lab: tokens in clear); with one it is HTTPS whatever this says.",
    scope: "cluster",
  }),
  replication: setting({
    schema: HostPort.optional(),
    doc: "Replication port, where other nodes' engines reach this node's replicas over mutual TLS.",
    scope: "node",
    defaultText: "the API's host, the API's port + 1",
    flag: { value: "<host:port>" },
  }),
  tlsDir: setting({
    schema: z.string().min(1).optional(),
    doc: "Directory with this node's cluster certificate: ca.crt, node.crt, node.key.",
    scope: "node",
    defaultText: "<dataDir>/tls",
    flag: { value: "<dir>" },
  }),
  joinToken: setting({
    schema: z.string().min(1).optional(),
    doc: "A one-time join token (hfj1.…, from `holdfast cluster join-token create`), or a file holding one: without a certificate the node asks the signer with it. Never logged.",
    scope: "node",
    flag: { value: "<token-or-file>" },
  }),
  identityDocument: setting({
    schema: z.string().min(1).optional(),
    doc: 'A file holding this instance\'s cloud identity document, {"document", "signature"}: without a certificate or join token the node asks the signer with it.',
    scope: "node",
    flag: { value: "<file>" },
  }),
  certificateNames: setting({
    schema: z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9.:-]{1,253}$/, "must be a DNS name or an IP address")
          .max(253),
      )
      .max(8, "at most 8 names")
      .default([]),
    doc: "More names (DNS names or IPs) this node's certificate is asked for besides its own addresses, such as a load balancer's; repeatable, at most 8.",
    scope: "cluster",
    flag: { name: "certificate-name", value: "<name>" },
  }),
  replicaTimeout: setting({
    schema: z.number().int().min(1, "must be at least 1 second").default(600),
    doc: "Seconds a replica's node may stay down before the replica is rebuilt on another node.",
    scope: "shared",
    flag: { value: "<seconds>" },
  }),
  quarantineTtl: setting({
    schema: z.number().int().min(60, "must be at least 60 seconds").default(604_800),
    doc: "Seconds a quarantined replica (one no volume listed when its node started) is kept before it is destroyed (604800: 7 days).",
    scope: "shared",
    flag: { value: "<seconds>" },
  }),
  adoptIdentity: setting({
    schema: z.boolean().default(false),
    doc: "Start although the node id, cluster or store differs from what the data dir recorded, and record the new one (replicas no record lists are then quarantined).",
    scope: "start",
  }),
  pools: setting({
    schema: z.array(z.string().min(1)).default([]),
    doc: "Storage pools: directories that hold replicas; repeatable.",
    scope: "node",
    defaultText: "<dataDir>/pool",
    flag: { name: "pool", value: "<dir>" },
  }),
  token: setting({
    schema: z.string().min(16, "must be at least 16 characters").optional(),
    doc: "The API token (the admin role).",
    scope: "cluster",
    defaultText: "a random token, written to <dataDir>/token (mode 0600) on first start",
    flag: { none: "a secret: a flag would show it in ps; give it in the config file or <dataDir>/token" },
  }),
  zone: setting({
    schema: Name.default("default"),
    doc: "Failure domain: zone.",
    scope: "node",
    flag: { value: "<zone>" },
  }),
  rack: setting({
    schema: Name.default("default"),
    doc: "Failure domain: rack.",
    scope: "node",
    flag: { value: "<rack>" },
  }),
  mountDir: setting({
    schema: z.string().min(1).default("/var/lib/holdfast/mounts"),
    doc: "The mount root: where `volume mount` mounts when no path is given, and the only place a path given to the API may resolve to; made mode 0700 at every start.",
    scope: "shared",
    flag: { value: "<dir>" },
  }),
  apiRequestTimeout: setting({
    schema: z
      .number()
      .int()
      .min(1, "must be at least 1 second")
      .max(600, "must be at most 600 seconds")
      .default(30),
    doc: "Seconds a client has to send a whole API request, headers and body; a slower one is cut off.",
    scope: "shared",
    flag: { value: "<seconds>" },
  }),
  apiMaxConnections: setting({
    schema: z.number().int().min(8, "must be at least 8").max(65_536, "must be at most 65536").default(256),
    doc: "API connections open at once; past it a new one is closed at once, so slow clients cannot take the descriptors I/O needs.",
    scope: "shared",
    flag: { value: "<n>" },
  }),
  inlineIo: setting({
    schema: z.boolean().default(true),
    doc: "Serve small page-aligned reads and writes from the event loop, not the thread pool (faster on few cores).",
    scope: "shared",
  }),
  leaseTtl: setting({
    schema: z
      .number()
      .int()
      .min(2, "must be at least 2 seconds")
      .max(300, "must be at most 300 seconds")
      .default(5),
    doc: "Seconds this node's lease lives without a keep-alive: how long a dead node still counts as up.",
    scope: "shared",
    flag: { value: "<seconds>" },
  }),
  pluginSocket: setting({
    schema: SocketPath.default("/run/docker/plugins/holdfast.sock"),
    doc: 'Unix socket of the Docker volume plugin (driver holdfast, also Marathon\'s dvdi volumes), or "none".',
    scope: "shared",
    flag: { value: "<path>" },
  }),
  csiSocket: setting({
    schema: SocketPath.default("/run/holdfast/csi.sock"),
    doc: 'Unix socket of the CSI plugin (Identity, Controller, Node), or "none".',
    scope: "shared",
    flag: { value: "<path>" },
  }),
  logLevel: setting({
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    doc: "Log level: fatal, error, warn, info, debug, trace or silent.",
    scope: "shared",
    flag: { value: "<level>" },
  }),
};

export type SettingName = keyof typeof AGENT_SETTINGS;

/** The settings every node shares as given: what a construct passes through to each node's config. */
export type SharedSettingName = {
  [K in SettingName]: (typeof AGENT_SETTINGS)[K]["scope"] extends "shared" ? K : never;
}[SettingName];

/** The zod shape of the table, each field typed by its row's schema. */
export type SettingsShape = { [K in SettingName]: (typeof AGENT_SETTINGS)[K]["schema"] };

export function settingsShape(): SettingsShape {
  return Object.fromEntries(
    Object.entries(AGENT_SETTINGS).map(([name, row]) => [name, row.schema]),
  ) as SettingsShape;
}

/** How a setting is given on the command line, derived from its row. */
export interface SettingFlag {
  name: SettingName;
  /** `--data-dir <dir>`, `--etcd-plain-http`, `--no-inline-io`. */
  flags: string;
  /** The help line, with the default. */
  help: string;
  /** A number (parsed with Number), a repeatable value, or a string or switch. */
  value: "number" | "list" | "string" | "switch";
}

/** The schema under its default and optional wrappers: what kind of value the setting takes. */
function baseType(schema: z.ZodType): string {
  let def = schema.def as { type: string; innerType?: z.ZodType };
  while ((def.type === "default" || def.type === "optional") && def.innerType) {
    def = def.innerType.def as typeof def;
  }
  return def.type;
}

/** The default in words: the row's, else the schema's own, else none. */
export function defaultOf(row: Setting): string | undefined {
  if (row.defaultText) return row.defaultText;
  const value = row.schema.safeParse(undefined);
  if (!value.success || value.data === undefined) return undefined;
  return Array.isArray(value.data) && value.data.length === 0 ? undefined : JSON.stringify(value.data);
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Every setting that has a flag, as commander takes it. */
export function settingFlags(): SettingFlag[] {
  const rows: [string, Setting][] = Object.entries(AGENT_SETTINGS);
  return rows.flatMap(([name, row]): SettingFlag[] => {
    const flag = row.flag ?? {};
    if ("none" in flag) return [];
    const type = baseType(row.schema);
    const fallback = defaultOf(row);
    const long = flag.name ?? kebab(name);
    if (type === "boolean") {
      const on = row.schema.parse(undefined) === true;
      return [
        {
          name: name as SettingName,
          flags: on ? `--no-${long}` : `--${long}`,
          help: on ? `turn off: ${row.doc}` : row.doc,
          value: "switch",
        },
      ];
    }
    return [
      {
        name: name as SettingName,
        flags: `--${long} ${flag.value ?? "<value>"}`,
        help: `${row.doc}${fallback ? ` (default ${fallback})` : ""}`,
        value: type === "number" ? "number" : type === "array" ? "list" : "string",
      },
    ];
  });
}
