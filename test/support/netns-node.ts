import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ROOT, sh, stopChild } from "./agent-process.js";
import { type DevCluster, run, waitFor } from "./dev-cluster.js";

export interface NetnsNodeOptions {
  /** The node's id, such as node4. */
  id: string;
  /** Tells its namespace, veth pair and subnet apart from the cluster's other netns nodes (1 to 250). */
  index: number;
  /** Its failure domain. */
  zone: string;
  /** The agent's lease TTL in seconds, as the dev cluster's. @default 2 */
  leaseTtl?: number;
}

/**
 * An agent joined to a dev cluster from a network namespace of its own, so that it can be cut off while it runs: a
 * partition, which a loopback address cannot make. A veth pair joins the namespace to the host (10.N.I.1 on the
 * host, 10.N.I.2 inside, where 127.0.N is the cluster's net and I the index), with route_localnet so that the agent
 * reaches etcd and the other agents on 127.0.N.x; taking the host's end down cuts it off from all of them, while
 * clients on this host still reach its NBD sockets through the file system. Needs root (ip netns).
 */
export class NetnsNode {
  private child?: ChildProcess;
  private cut = false;

  private constructor(
    private readonly cluster: DevCluster,
    private readonly options: NetnsNodeOptions,
  ) {}

  /** Makes the namespace, issues the node's certificate from the cluster's CA and starts its agent. */
  static async join(cluster: DevCluster, options: NetnsNodeOptions): Promise<NetnsNode> {
    const node = new NetnsNode(cluster, options);
    await node.makeNamespace();
    const data = join(node.dir, "data");
    await mkdir(data, { recursive: true, mode: 0o700 });
    await writeFile(join(data, "token"), `${cluster.up.token}\n`, { mode: 0o600 });
    const issued = await run([
      ...["cluster", "issue", "--ca-dir", join(cluster.dir, "ca"), "--node", options.id],
      ...["--address", node.address, "--out", join(data, "tls")],
    ]);
    if (issued.code !== 0) throw new Error(`cluster issue for ${options.id}: ${issued.stderr}`);
    await node.start();
    return node;
  }

  get id(): string {
    return this.options.id;
  }

  /** The agent's address inside its namespace. */
  get address(): string {
    return `${this.subnet}.2`;
  }

  get api(): string {
    return `https://${this.address}:9001`;
  }

  /** Whether the node is cut off now. */
  get partitioned(): boolean {
    return this.cut;
  }

  /** Its directory, beside the dev nodes' (so nbdSocket and agentLog find it as theirs). */
  get dir(): string {
    return join(this.cluster.dir, this.options.id);
  }

  private get net(): string {
    return this.cluster.up.etcd.replace(/^https?:\/\//, "").replace(/\.\d+:\d+$/, "");
  }

  private get subnet(): string {
    return `10.${this.net.split(".")[2]}.${this.options.index}`;
  }

  /** Names short enough for an interface (15 bytes) and unique per cluster net and index. */
  private get names() {
    const tag = `hf${this.net.split(".")[2]}n${this.options.index}`;
    return { ns: tag, host: `${tag}h`, inner: `${tag}c` };
  }

  /** Starts the agent (again, on the same data) and waits until the cluster lists it up. */
  async start(): Promise<void> {
    const { id, zone, leaseTtl = 2 } = this.options;
    const log = await open(join(this.dir, "agent.log"), "a");
    // The dev cluster's etcd client certificate (CN holdfast-dev), as its own nodes use.
    const etcdClient = join(this.cluster.dir, "etcd", "client");
    this.child = spawn(
      "ip",
      [
        ...["netns", "exec", this.names.ns, process.execPath, join(ROOT, "dist/holdfast.mjs"), "agent"],
        ...[
          "--data-dir",
          join(this.dir, "data"),
          "--store",
          `etcds://${this.net}.10:2379`,
          ...["--etcd-ca", join(etcdClient, "ca.crt"), "--etcd-cert", join(etcdClient, "client.crt")],
          ...["--etcd-key", join(etcdClient, "client.key"), "--cluster", "dev"],
        ],
        ...["--node-id", id, "--api", `${this.address}:9001`, "--zone", zone],
        ...["--lease-ttl", String(leaseTtl), "--mount-dir", join(this.dir, "mounts")],
        ...["--plugin-socket", "none", "--csi-socket", "none", "--log-level", "info"],
      ],
      { stdio: ["ignore", log.fd, log.fd] },
    );
    await log.close();
    await waitFor(`${id} to join`, async () => {
      if (this.child?.exitCode !== null) throw new Error(`${id}'s agent exited: see ${this.dir}/agent.log`);
      const nodes = await this.cluster.json<Array<{ id: string; state: string }>>(["node", "list"]);
      return nodes.some((n) => n.id === id && n.state === "up") ? true : undefined;
    });
  }

  /** Stops the agent with `signal` and waits until it has exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child?.signalCode === "SIGSTOP") this.child.kill("SIGCONT");
    await stopChild(this.child, signal);
  }

  /** SIGSTOP: `ip netns exec` execs the agent, so the child is the agent itself. */
  freeze(): void {
    this.child?.kill("SIGSTOP");
  }

  thaw(): void {
    this.child?.kill("SIGCONT");
  }

  /** Cuts the node off from etcd and every other node; it keeps running. */
  async partition(): Promise<void> {
    await sh("ip", ["link", "set", this.names.host, "down"]);
    this.cut = true;
  }

  async heal(): Promise<void> {
    await sh("ip", ["link", "set", this.names.host, "up"]);
    this.cut = false;
  }

  /** Stops the agent and removes the namespace and its veth pair. */
  async remove(): Promise<void> {
    this.thaw();
    await stopChild(this.child, "SIGKILL");
    await this.removeNamespace();
  }

  private async makeNamespace(): Promise<void> {
    const { ns, host, inner } = this.names;
    await this.removeNamespace();
    const inside = (...args: string[]) => sh("ip", ["netns", "exec", ns, ...args]);
    await sh("ip", ["netns", "add", ns]);
    await sh("ip", ["link", "add", host, "type", "veth", "peer", "name", inner]);
    await sh("ip", ["link", "set", inner, "netns", ns]);
    await sh("ip", ["addr", "add", `${this.subnet}.1/24`, "dev", host]);
    await sh("ip", ["link", "set", host, "up"]);
    await sh("sysctl", ["-qw", `net.ipv4.conf.${host}.route_localnet=1`]);
    await inside("ip", "addr", "add", `${this.address}/24`, "dev", inner);
    await inside("ip", "link", "set", inner, "up");
    await inside("ip", "link", "set", "lo", "up");
    await inside("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1");
    await inside("sysctl", "-qw", `net.ipv4.conf.${inner}.route_localnet=1`);
    await inside(
      "ip",
      "route",
      "add",
      `${this.net}.0/24`,
      "via",
      `${this.subnet}.1`,
      "dev",
      inner,
      "src",
      this.address,
    );
  }

  private async removeNamespace(): Promise<void> {
    await sh("ip", ["netns", "del", this.names.ns]).catch(() => undefined);
    await sh("ip", ["link", "del", this.names.host]).catch(() => undefined);
  }
}
