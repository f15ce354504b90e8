import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { type AgentConfigInput, HostPort } from "../agent/src/config/index.js";
import { isName } from "../agent/src/names.js";
import { VOLUME_KEYS, type VolumeSpec } from "../agent/src/volume-spec/index.js";
import { type AgentSettings, invalid } from "./agent-settings.js";
import { Annotations, Construct, Lazy, TerraformOutput } from "./cdktf.js";

/** What the cluster exposes once synthesized. */
export interface IHoldfastCluster {
  /** The cluster's name: its keys live under `/holdfast/<name>/` in the metadata store. */
  readonly clusterName: string;
  /** A stable id for this cluster on its metadata store. @attribute */
  readonly clusterId: string;
  /** Every node API address clients can use (`https://HOST:PORT`: nodes serve the API with their cluster certificate). @attribute */
  readonly apiEndpoints: string[];
}

/**
 * Where the cluster keeps its metadata. Exactly one of the two. Agents reach etcd over mutual TLS with the cluster's
 * etcd client certificate (`holdfast etcd client`; AWS nodes fetch it from `secrets.etcdClient`, on-prem hosts from
 * the data bag's `etcd`), whose etcd user has a role limited to the cluster's prefix (`holdfast etcd grant`).
 */
export type MetadataStore =
  /** An etcd v3 cluster you run: `HOST:PORT` of each member's client URL. */
  | {
      readonly etcdEndpoints: readonly string[];
      /** Plain HTTP to etcd, no client certificate: a lab only (records cross the network in clear). @default false */
      readonly plainHttp?: boolean;
    }
  /** An etcd of 3 or 5 members run by the cookbook on the first on-prem hosts (they have fixed addresses), over TLS. */
  | { readonly embeddedEtcd: { readonly members: 3 | 5 } };

/** The TCP ports of the fabric. */
export interface HoldfastPorts {
  /** The agents' REST API. @default 9001 */
  readonly api?: number;
  /** Engine to replica traffic between agents. @default 9002 */
  readonly replication?: number;
  /** etcd clients (agents) to etcd. @default 2379 */
  readonly etcdClient?: number;
  /** etcd member to member. @default 2380 */
  readonly etcdPeer?: number;
}

/** The replication the cluster's layout must be able to place: checked at synthesis against the node groups. */
export interface ReplicationPolicy {
  /** Copies of each volume. @default - the `repl` key's default in the volume spec table */
  readonly replicas?: VolumeSpec["repl"];
  /** The failure domain that must hold each copy apart. @default "zones" */
  readonly spread?: "zones" | "racks" | "nodes";
}

export interface HoldfastClusterProps {
  /** The cluster's name: 1-63 letters, digits, `_`, `-` or `.`. */
  readonly clusterName: string;
  /** Where metadata lives. */
  readonly metadata: MetadataStore;
  /** Ports. @default - 9001 API, 9002 replication, 2379/2380 etcd */
  readonly ports?: HoldfastPorts;
  /** CIDRs of clients allowed to reach the API (besides the cluster's own nodes). @default - none */
  readonly clientCidrs?: readonly string[];
  /**
   * The cluster CA's certificate (PEM: the ca.crt of `holdfast cluster init`; public, unlike its key), which clients
   * verify the nodes' HTTPS API by: {@link HoldfastCluster.providerConfig} passes it to the holdfast provider, and
   * the `<name>_ca_certificate` output carries it to other clients (HOLDFAST_CA).
   * @default - none: clients get the CA some other way (the provider's ca_file, HOLDFAST_CA)
   */
  readonly caCertificate?: string;
  /** The replication the layout must hold. @default - the volume spec's default repl, spread over zones */
  readonly replication?: ReplicationPolicy;
  /** Agent settings shared by every node. @default - the agent's own defaults, data in /var/lib/holdfast */
  readonly agent?: AgentSettings;
  /** The bundled agent (`node scripts/build-artifact.mjs`). @default - dist/holdfast-agent-<version>.tar.gz of this repository */
  readonly artifactPath?: string;
  /** Tags on every AWS resource the cluster creates. @default - only `holdfast:cluster` */
  readonly tags?: Readonly<Record<string, string>>;
}

/** What a node group tells its cluster, for validation and outputs. */
export interface HoldfastNodeGroupInfo {
  readonly kind: "aws" | "on-prem";
  readonly zones: readonly string[];
  readonly racks: readonly string[];
  readonly nodeCount: number;
  readonly apiEndpoints: readonly string[];
  /** On-prem hosts only: fixed addresses, in declaration order (embedded etcd members come from these). */
  readonly hosts: readonly { name: string; address: string }[];
}

const CIDR = /^([0-9]{1,3}\.){3}[0-9]{1,3}\/([0-9]|[12][0-9]|3[0-2])$|^[0-9A-Fa-f:]+\/[0-9]{1,3}$/;
const REPO = resolve(import.meta.dirname, "..");

/**
 * A Holdfast cluster: its name, metadata store, ports and the agent artifact its nodes install, with nothing of any
 * one cloud (AwsNodeGroup brings the AWS resources it needs). Node
 * groups (AwsNodeGroup, OnPremNodeGroup) join it; it checks at synthesis that their layout can hold the replication
 * policy, and outputs the API endpoints and the cluster id.
 */
export class HoldfastCluster extends Construct implements IHoldfastCluster {
  readonly clusterName: string;
  readonly ports: Required<HoldfastPorts>;
  readonly clientCidrs: readonly string[];
  readonly agent: AgentSettings;
  readonly tags: Readonly<Record<string, string>>;
  readonly artifact: { path: string; fileName: string; sha256: string; version: string };
  readonly clusterId: string;
  readonly apiEndpoints: string[];
  private readonly groups: HoldfastNodeGroupInfo[] = [];
  private readonly groupListeners: Array<(group: HoldfastNodeGroupInfo) => void> = [];

  constructor(
    scope: Construct,
    id: string,
    readonly props: HoldfastClusterProps,
  ) {
    super(scope, id);
    if (!isName(props.clusterName)) {
      throw invalid(this, "clusterName", "must be 1-63 letters, digits, '_', '-' or '.'");
    }
    this.clusterName = props.clusterName;
    this.ports = { api: 9001, replication: 9002, etcdClient: 2379, etcdPeer: 2380, ...props.ports };
    const ports = Object.entries(this.ports);
    for (const [name, port] of ports) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw invalid(this, `ports.${name}`, "must be a port number from 1 to 65535");
      }
    }
    if (new Set(ports.map(([, p]) => p)).size !== ports.length) {
      throw invalid(this, "ports", "each port must be different");
    }
    checkMetadata(this, props.metadata);
    this.clientCidrs = props.clientCidrs ?? [];
    for (const cidr of this.clientCidrs) {
      if (!CIDR.test(cidr)) throw invalid(this, "clientCidrs", `"${cidr}" is not a CIDR such as 10.0.0.0/16`);
      if (cidr === "0.0.0.0/0" || cidr === "::/0") {
        Annotations.of(this).addWarning(
          `clientCidrs: ${cidr} opens the Holdfast API to every address; list your clients' networks instead`,
        );
      }
    }
    if (plainEtcd(props.metadata)) {
      Annotations.of(this).addWarning(
        "metadata.plainHttp: agents speak plain HTTP to etcd, without a client certificate: a lab only",
      );
    }
    if (props.caCertificate !== undefined && !props.caCertificate.includes("-----BEGIN CERTIFICATE-----")) {
      throw invalid(this, "caCertificate", "must be a PEM certificate (the ca.crt of holdfast cluster init)");
    }
    this.agent = props.agent ?? {};
    this.tags = { ...props.tags, "holdfast:cluster": props.clusterName };
    this.artifact = readArtifact(this, props.artifactPath);

    this.clusterId = Lazy.stringValue({ produce: () => clusterIdOf(this.clusterName, this.store) });
    this.apiEndpoints = Lazy.listValue({ produce: () => this.groups.flatMap((g) => g.apiEndpoints) });
    const prefix = props.clusterName.replace(/[^A-Za-z0-9_]/g, "_");
    new TerraformOutput(this, "api-endpoints", {
      value: this.apiEndpoints,
      description: `Holdfast API endpoints of cluster ${props.clusterName}`,
    }).overrideLogicalId(`${prefix}_api_endpoints`);
    if (props.caCertificate !== undefined) {
      new TerraformOutput(this, "ca-certificate", {
        value: props.caCertificate,
        description: `The CA that signed the API certificates of cluster ${props.clusterName} (HOLDFAST_CA)`,
      }).overrideLogicalId(`${prefix}_ca_certificate`);
    }
    new TerraformOutput(this, "cluster-id", {
      value: this.clusterId,
      description: `Holdfast cluster id of ${props.clusterName}`,
    }).overrideLogicalId(`${prefix}_cluster_id`);

    this.node.addValidation({ validate: () => this.validateLayout() });
  }

  /**
   * The holdfast provider's settings for this cluster: its first API endpoint (https) and the CA to verify it by,
   * for `new HoldfastProvider(stack, "holdfast", cluster.providerConfig())`. Not the token: it is a secret, give it
   * by HOLDFAST_TOKEN, so that it stays out of the synthesized JSON.
   */
  providerConfig(): { endpoint: string; caCertificate?: string } {
    return {
      endpoint: Lazy.stringValue({ produce: () => this.groups.flatMap((g) => g.apiEndpoints)[0] }),
      ...(this.props.caCertificate === undefined ? {} : { caCertificate: this.props.caCertificate }),
    };
  }

  /** The agent's `store` setting: `etcds://HOST:PORT,...` (or `etcd://` in a lab), from the endpoints or the embedded members. */
  get store(): string {
    const m = this.props.metadata;
    const endpoints =
      "etcdEndpoints" in m
        ? m.etcdEndpoints
        : this.etcdMembers().map((h) => `${h.address}:${this.ports.etcdClient}`);
    return `${plainEtcd(m) ? "etcd" : "etcds"}://${endpoints.join(",")}`;
  }

  /** Whether agents reach etcd over TLS (with the client certificate in `<dataDir>/etcd/`). */
  get etcdTls(): boolean {
    return !plainEtcd(this.props.metadata);
  }

  /** The agent settings that say how to reach the store: its URL, and etcd's TLS files in the data dir or the lab flag. */
  storeSettings(dataDir: string): Partial<AgentConfigInput> {
    if (!this.etcdTls) return { store: this.store, etcdPlainHttp: true };
    const dir = etcdClientDir(dataDir);
    return {
      store: this.store,
      etcdCa: `${dir}/ca.crt`,
      etcdCert: `${dir}/client.crt`,
      etcdKey: `${dir}/client.key`,
    };
  }

  /** The on-prem hosts that run the embedded etcd: the first 3 or 5 declared. Empty with external etcd. */
  etcdMembers(): { name: string; address: string }[] {
    const m = this.props.metadata;
    if (!("embeddedEtcd" in m)) return [];
    return this.groups.flatMap((g) => g.hosts).slice(0, m.embeddedEtcd.members);
  }

  /** Called by each node group's constructor. */
  register(group: HoldfastNodeGroupInfo): void {
    this.groups.push(group);
    for (const listener of this.groupListeners) listener(group);
  }

  /**
   * Calls `listener` with every node group, those registered so far and each one after: how what one kind of group
   * shares (AWS's security groups) learns of the others' hosts without the cluster knowing of either.
   */
  onNodeGroup(listener: (group: HoldfastNodeGroupInfo) => void): void {
    this.groupListeners.push(listener);
    for (const group of this.groups) listener(group);
  }

  /** How many distinct zones, racks or nodes the node groups declared so far cover. */
  failureDomains(spread: "zones" | "racks" | "nodes"): number {
    if (spread === "nodes") return this.groups.reduce((n, g) => n + g.nodeCount, 0);
    return new Set(this.groups.flatMap((g) => (spread === "zones" ? g.zones : g.racks))).size;
  }

  private validateLayout(): string[] {
    const errors: string[] = [];
    if (this.groups.length === 0) errors.push(`${this.clusterName}: no node group joins this cluster`);
    const m = this.props.metadata;
    if ("embeddedEtcd" in m) {
      const hosts = this.groups.flatMap((g) => g.hosts).length;
      if (hosts < m.embeddedEtcd.members) {
        errors.push(
          `metadata.embeddedEtcd.members: ${m.embeddedEtcd.members} etcd members need ${m.embeddedEtcd.members} on-prem hosts (AWS nodes in auto scaling groups have no fixed address); the cluster has ${hosts}`,
        );
      }
    }
    const replicas = this.props.replication?.replicas ?? defaultRepl();
    const spread = this.props.replication?.spread ?? "zones";
    const domains = this.failureDomains(spread);
    if (this.groups.length > 0 && replicas > domains) {
      errors.push(
        `replication.replicas: ${replicas} replicas spread over ${spread} need ${replicas} ${spread}; the cluster's node groups cover ${domains}`,
      );
    }
    return errors;
  }
}

/** Where a node keeps the cluster's etcd client certificate: `<dataDir>/etcd/` (ca.crt, client.crt, client.key). */
export function etcdClientDir(dataDir: string): string {
  return `${dataDir}/etcd`;
}

function plainEtcd(m: MetadataStore): boolean {
  return "etcdEndpoints" in m && m.plainHttp === true;
}

function checkMetadata(scope: Construct, m: MetadataStore): void {
  if ("etcdEndpoints" in m) {
    if (m.etcdEndpoints.length === 0)
      throw invalid(scope, "metadata.etcdEndpoints", "give at least one HOST:PORT");
    for (const e of m.etcdEndpoints) {
      if (!HostPort.safeParse(e).success)
        throw invalid(scope, "metadata.etcdEndpoints", `"${e}" is not HOST:PORT`);
    }
  } else if (m.embeddedEtcd.members !== 3 && m.embeddedEtcd.members !== 5) {
    throw invalid(
      scope,
      "metadata.embeddedEtcd.members",
      "must be 3 or 5 (an etcd quorum that survives a loss)",
    );
  }
}

function defaultRepl(): number {
  return VOLUME_KEYS.find((k) => k.field === "repl")?.default as number;
}

/** The artifact's version, file name and checksum; a missing artifact fails synthesis with the command to build it. */
function readArtifact(scope: Construct, path?: string): HoldfastCluster["artifact"] {
  const { version } = JSON.parse(readFileSync(resolve(REPO, "package.json"), "utf8")) as { version: string };
  const file = resolve(path ?? resolve(REPO, "dist", `holdfast-agent-${version}.tar.gz`));
  if (!existsSync(file)) {
    throw invalid(
      scope,
      "artifactPath",
      `${file} does not exist: build it with "node scripts/build-artifact.mjs"`,
    );
  }
  const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
  return { path: file, fileName: basename(file), sha256, version };
}

/** A UUID-shaped hash of the name and the store: two clusters of one name on two etcds get two ids. */
function clusterIdOf(name: string, store: string): string {
  const h = createHash("sha256").update(`${name}\n${store}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
