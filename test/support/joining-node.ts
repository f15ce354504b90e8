import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ROOT, stopChild } from "./agent-process.js";
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
    return `http://${this.host}:9001`;
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
    const child = spawn(
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
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    child.stdout?.on("data", (d) => {
      this.log += d;
    });
    child.stderr?.on("data", (d) => {
      this.log += d;
    });
    const deadline = Date.now() + 30_000;
    while (!this.log.includes('"agent ready"')) {
      if (child.exitCode !== null) throw new Error(`${this.id} exited with ${child.exitCode}:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`${this.id} did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
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
