import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, stopChild } from "./agent-process.js";

/** A real etcd (Debian's etcd-server) on 127.0.0.1 with its own data dir, for tests. */
export class EtcdProcess {
  private child?: ChildProcess;

  private constructor(
    readonly dir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  static async start(): Promise<EtcdProcess> {
    const etcd = new EtcdProcess(
      await mkdtemp(join(tmpdir(), "hf-etcd-")),
      await freePort(),
      await freePort(),
    );
    await etcd.resume();
    return etcd;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** Starts etcd (again, with the same data) and waits until it reports healthy. */
  async resume(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.child = spawn(
      "etcd",
      [
        "--name=test",
        `--data-dir=${join(this.dir, "data")}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        "--log-level=error",
      ],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const healthy = await fetch(`${this.endpoint}/health`)
        .then((r) => r.json() as Promise<{ health: string }>)
        .then((h) => h.health === "true")
        .catch(() => false);
      if (healthy) return;
      if (this.child.exitCode !== null) throw new Error(`etcd exited with ${this.child.exitCode}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("etcd did not become healthy in 15 s");
  }

  /** Stops etcd with `signal` and waits for it to exit. */
  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    return stopChild(this.child, signal);
  }

  async destroy(): Promise<void> {
    await this.stop("SIGKILL");
    await rm(this.dir, { recursive: true, force: true });
  }
}
