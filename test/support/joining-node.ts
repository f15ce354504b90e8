import type { ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { agentReady, ROOT, spawnLogged, stopChild } from "./agent-process.js";
import type { DevCluster, GuestNode } from "./dev-cluster.js";

/**
 * An agent that joins a dev cluster with a join token instead of a certificate `dev up` issued: its data dir is
 * `<cluster dir>/<id>/data` (so DevCluster's paths work for it), its API `<host>:9001`, and it starts with no
 * tls/ directory. The cluster adopts it.
 */
export class JoiningNode implements GuestNode {
  private child?: ChildProcess;
  log = "";

  constructor(
    private readonly cluster: DevCluster,
    readonly id: string,
    readonly host: string,
    private readonly joinToken: string,
  ) {}

  get api(): string {
    return `https://${this.host}:9001`;
  }

  get dataDir(): string {
    return join(this.cluster.dir, this.id, "data");
  }

  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    // The dev nodes' shared token, so the cluster's HOLDFAST_TOKEN works against this node too.
    await writeFile(join(this.dataDir, "token"), `${this.cluster.up.token}\n`, { mode: 0o600 });
    const nodeDir = join(this.cluster.dir, this.id);
    this.log = "";
    const child = spawnLogged(
      process.execPath,
      [
        join(ROOT, "dist/holdfast.mjs"),
        "agent",
        `--data-dir=${this.dataDir}`,
        ...this.cluster.storeArgs(),
        `--node-id=${this.id}`,
        `--api=${this.host}:9001`,
        `--mount-dir=${join(nodeDir, "mounts")}`,
        `--plugin-socket=${join(nodeDir, "plugin.sock")}`,
        `--csi-socket=${join(nodeDir, "csi.sock")}`,
        `--join-token=${this.joinToken}`,
        "--log-level=info",
      ],
      this,
    );
    this.child = child;
    await agentReady(child, this, this.id, 30_000);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await stopChild(this.child, signal);
  }

  freeze(): void {
    this.child?.kill("SIGSTOP");
  }

  thaw(): void {
    this.child?.kill("SIGCONT");
  }

  async remove(): Promise<void> {
    this.thaw();
    await this.stop("SIGKILL");
  }
}
