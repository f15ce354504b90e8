import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { SpecError } from "../errors.js";
import type { EtcdTlsFiles } from "../meta/index.js";
import { settingsShape } from "./settings.js";
import { joinHostPort, splitHostPort } from "./values.js";

/** Agent settings: the `--config` JSON file, then flags on top. One schema, from the settings table, validates both. */
export const AgentConfigSchema = z.object(settingsShape());

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
