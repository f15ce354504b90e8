import { mkdirSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { type AgentConfigInput, joinHostPort } from "../agent/src/config/index.js";
import { isName } from "../agent/src/names.js";
import { AGENT_CONFIG_PATH, checkedAgentConfig, DEFAULT_DATA_DIR, invalid } from "./agent-settings.js";
import { Construct, Lazy, TerraformOutput } from "./cdktf.js";
import type { HoldfastCluster } from "./cluster.js";

/** An on-prem host, configured by the `holdfast` Chef cookbook. */
export interface OnPremHost {
  /** The node id in the cluster, and the Chef node name. */
  readonly name: string;
  /** The fixed IP address the other nodes reach it at; the API listens there. */
  readonly address: string;
  /** Failure domain: zone. */
  readonly zone: string;
  /** Failure domain: rack. @default "default" */
  readonly rack?: string;
  /** Block devices the cookbook formats once (ext4) and mounts as storage pools. @default - none */
  readonly devices?: readonly string[];
  /** Existing directories used as storage pools as they are. @default - `<dataDir>/pool` when no devices either */
  readonly pools?: readonly string[];
}

export interface OnPremNodeGroupProps {
  /** The cluster the hosts join. */
  readonly cluster: HoldfastCluster;
  readonly hosts: readonly OnPremHost[];
  /** Where the hosts download the agent artifact (https, or file:// after your own copy step). @default - file:///var/cache/holdfast/<artifact file name> */
  readonly artifactUrl?: string;
  /** The run list in each host's JSON. @default ["recipe[holdfast::default]"] */
  readonly runList?: readonly string[];
  /**
   * The (encrypted) data bag whose item named after the cluster holds `token` and `join_tokens` (node id to its
   * one-time join token). No CA key: nodes enroll with their token. @default "holdfast"
   */
  readonly secretsDataBag?: string;
}

/** What the cookbook reads beyond the agent config (node['holdfast_cookbook']). */
export interface CookbookAttributes {
  version: string;
  artifact_url: string;
  artifact_sha256: string;
  config_path: string;
  devices: { device: string; pool: string }[];
  secrets_data_bag: string;
  secrets_data_bag_item: string;
  /** Present on the hosts that run a member of the embedded etcd. */
  etcd?: { name: string; address: string; client_port: number; peer_port: number; initial_cluster: string };
}

/** A host's Chef JSON (`chef-client -z -j FILE`): the agent config as is under `holdfast`, the cookbook's own keys beside it. */
export interface ChefNodeJson {
  holdfast: AgentConfigInput;
  holdfast_cookbook: CookbookAttributes;
  run_list: string[];
}

/**
 * On-prem Holdfast nodes: each host's configuration rendered as Chef node attribute JSON for the `holdfast`
 * cookbook. `holdfast` in that JSON is exactly the agent's config (the cookbook writes it to /etc/holdfast/agent.json
 * unchanged, and `holdfast agent --config` reads the whole file as is), so the construct, the cookbook and the agent
 * share one contract: the agent's schema.
 */
export class OnPremNodeGroup extends Construct {
  readonly hosts: readonly OnPremHost[];

  constructor(
    scope: Construct,
    id: string,
    readonly props: OnPremNodeGroupProps,
  ) {
    super(scope, id);
    this.hosts = props.hosts;
    this.validate();
    const { cluster } = props;
    cluster.register({
      kind: "on-prem",
      zones: this.hosts.map((h) => h.zone),
      racks: this.hosts.map((h) => `${h.zone}/${h.rack ?? "default"}`),
      nodeCount: this.hosts.length,
      // The cookbook issues each node's certificate for its address, and the agent serves HTTPS with it.
      apiEndpoints: this.hosts.map((h) => `https://${joinHostPort(h.address, cluster.ports.api)}`),
      hosts: this.hosts.map((h) => ({ name: h.name, address: h.address })),
    });
    new TerraformOutput(this, "chef-attributes", {
      value: Lazy.anyValue({
        produce: () =>
          Object.fromEntries(this.hosts.map((h) => [h.name, JSON.stringify(this.chefJson(h.name))])),
      }),
      description: "Chef node JSON per host (chef-client -z -j)",
    }).overrideLogicalId(
      `${cluster.clusterName.replace(/[^A-Za-z0-9_]/g, "_")}_${id.replace(/[^A-Za-z0-9_]/g, "_")}_chef_attributes`,
    );
  }

  /** The Chef JSON of one host. Call it once every node group is declared (the store may depend on them). */
  chefJson(hostName: string): ChefNodeJson {
    const host = this.hosts.find((h) => h.name === hostName);
    if (!host) throw invalid(this, "hosts", `no host named ${hostName}`);
    const { cluster } = this.props;
    const dataDir = cluster.agent.dataDir ?? DEFAULT_DATA_DIR;
    const devices = (host.devices ?? []).map((device, i) => ({ device, pool: `${dataDir}/pools/${i}` }));
    const pools = [...devices.map((d) => d.pool), ...(host.pools ?? [])];
    const config = checkedAgentConfig(this, {
      ...cluster.agent,
      dataDir,
      ...cluster.storeSettings(dataDir),
      cluster: cluster.clusterName,
      nodeId: host.name,
      api: joinHostPort(host.address, cluster.ports.api),
      replication: joinHostPort(host.address, cluster.ports.replication),
      ...(pools.length > 0 ? { pools } : {}),
      zone: host.zone,
      rack: host.rack ?? "default",
      // Written by the cookbook from the data bag; the agent enrolls with it and the CA key stays with the signer.
      joinToken: `${dataDir}/join-token`,
    });
    const members = cluster.etcdMembers();
    const member = members.find((m) => m.name === host.name);
    const { etcdClient, etcdPeer } = cluster.ports;
    return {
      holdfast: config,
      holdfast_cookbook: {
        version: cluster.artifact.version,
        artifact_url: this.props.artifactUrl ?? `file:///var/cache/holdfast/${cluster.artifact.fileName}`,
        artifact_sha256: cluster.artifact.sha256,
        config_path: AGENT_CONFIG_PATH,
        devices,
        secrets_data_bag: this.props.secretsDataBag ?? "holdfast",
        secrets_data_bag_item: cluster.clusterName,
        ...(member
          ? {
              etcd: {
                name: member.name,
                address: member.address,
                client_port: etcdClient,
                peer_port: etcdPeer,
                initial_cluster: members
                  .map((m) => `${m.name}=https://${joinHostPort(m.address, etcdPeer)}`)
                  .join(","),
              },
            }
          : {}),
      },
      run_list: [...(this.props.runList ?? ["recipe[holdfast::default]"])],
    };
  }

  /** Writes `<dir>/<host>.json` for every host: what `chef-client -z -j` takes. Returns the paths. */
  writeChefAttributes(dir: string): string[] {
    mkdirSync(dir, { recursive: true });
    return this.hosts.map((h) => {
      const path = join(dir, `${h.name}.json`);
      writeFileSync(path, `${JSON.stringify(this.chefJson(h.name), null, 2)}\n`);
      return path;
    });
  }

  private validate(): void {
    if (this.hosts.length === 0) throw invalid(this, "hosts", "at least one host is required");
    const seen = new Set<string>();
    this.hosts.forEach((h, i) => {
      if (!isName(h.name))
        throw invalid(this, `hosts[${i}].name`, "must be 1-63 letters, digits, '_', '-' or '.'");
      if (isIP(h.address) === 0)
        throw invalid(this, `hosts[${i}].address`, `"${h.address}" is not an IP address`);
      for (const key of [h.name, h.address]) {
        if (seen.has(key)) throw invalid(this, `hosts[${i}]`, `${key} appears twice`);
        seen.add(key);
      }
      for (const [what, list] of [
        ["devices", h.devices],
        ["pools", h.pools],
      ] as const) {
        const bad = (list ?? []).find((p) => !p.startsWith("/"));
        if (bad !== undefined) throw invalid(this, `hosts[${i}].${what}`, `"${bad}" is not an absolute path`);
      }
    });
  }
}
