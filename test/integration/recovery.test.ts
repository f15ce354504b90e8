// Recovery destroys nothing on absence (docs/decisions/0009-recovery.md): an agent restarted under another node id,
// another cluster or against an empty etcd refuses to start, and with its new identity adopted it quarantines
// what no record lists; only a recorded deletion (a tombstone) removes a replica. Real agents, real etcd.
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { HOLDFAST, sh, spawnLogged, stopChild } from "../support/agent-process.js";
import { DevCluster, run, waitFor } from "../support/dev-cluster.js";
import { EtcdProcess } from "../support/etcd-process.js";

const NET = "127.0.50";
let nextHost = 20;

/** One agent process started directly, so that each start can change its node id, cluster or store. */
class Agent {
  child?: ChildProcess;
  log = "";
  readonly api = `${NET}.${nextHost++}:9001`;

  private constructor(readonly dir: string) {}

  static async make(): Promise<Agent> {
    return new Agent(await mkdtemp(join(tmpdir(), "hf-rc-")));
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  /** Starts the agent; resolves with null once it is ready, or with its exit code if it exits first. */
  async start(args: string[]): Promise<number | null> {
    this.log = "";
    const child = spawnLogged(
      HOLDFAST,
      [
        "agent",
        `--data-dir=${this.dataDir}`,
        `--api=${this.api}`,
        `--mount-dir=${join(this.dir, "mnt")}`,
        "--plugin-socket=none",
        "--csi-socket=none",
        "--log-level=info",
        ...args,
      ],
      this,
    );
    this.child = child;
    const exited = new Promise<number>((r) => child.once("exit", (code) => r(code ?? 1)));
    const ready = waitFor("agent ready", async () => (this.log.includes('"agent ready"') ? true : undefined));
    const result = await Promise.race([exited, ready.then(() => null)]);
    if (result !== null) this.child = undefined;
    return result;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, "SIGTERM");
    this.child = undefined;
  }

  async hf(...args: string[]) {
    const token = (await readFile(join(this.dataDir, "token"), "utf8")).trim();
    return run(args, { HOLDFAST_API: `http://${this.api}`, HOLDFAST_TOKEN: token });
  }

  async json<T = Record<string, unknown>>(...args: string[]): Promise<T> {
    const r = await this.hf(...args, "--output", "json");
    if (r.code !== 0) throw new Error(`holdfast ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A sha256 of every file in a replica directory, by path: what "no byte of it changed" is checked against. The
 * quarantine mark is left out: it is the quarantine, beside the replica's own files.
 */
async function checksums(dir: string, under = ""): Promise<Record<string, string>> {
  const sums: Record<string, string> = {};
  for (const entry of await readdir(join(dir, under), { withFileTypes: true })) {
    const path = join(under, entry.name);
    if (entry.isDirectory()) Object.assign(sums, await checksums(dir, path));
    else if (path !== "quarantined.json") {
      sums[path] = createHash("sha256")
        .update(await readFile(join(dir, path)))
        .digest("hex");
    }
  }
  return sums;
}

/** The first MiB of a replica's data as written through NBD: its one layer's data file. */
async function firstMiB(dir: string): Promise<Buffer> {
  const [layer] = await readdir(join(dir, "layers"));
  return (await readFile(join(dir, "layers", layer as string, "data"))).subarray(0, 1 << 20);
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Creates `name`, writes a MiB of `pattern` through NBD, detaches it; returns its id. */
async function volumeWithData(
  hf: (...a: string[]) => Promise<{ code: number; stdout: string; stderr: string }>,
  spec: string,
  pattern: number,
): Promise<string> {
  const name = spec.split(",")[0]?.split("=")[1] as string;
  const created = await hf("volume", "create", spec, "--output", "json");
  assert.is(created.code, 0, created.stderr);
  const attached = await hf("volume", "attach", name, "--output", "json");
  assert.is(attached.code, 0, attached.stderr);
  const { id, nbd } = JSON.parse(attached.stdout) as { id: string; nbd: string };
  await sh("qemu-io", ["-f", "raw", "-c", `write -P ${pattern} 0 1M`, nbd]);
  assert.is((await hf("volume", "detach", name)).code, 0);
  return id;
}

interface Quarantined {
  node: string;
  volumeId: string;
  since: string;
}

const identity = suite("a restart under another identity destroys nothing");
const agents: Agent[] = [];
const etcds: EtcdProcess[] = [];
identity.after(async () => {
  for (const a of agents) await a.destroy();
  for (const e of etcds) await e.destroy();
});

/** An agent (local store unless `store` says) with two volumes holding data; answers their replicas' dirs and sums. */
async function agentWithVolumes(args: string[]) {
  const agent = await Agent.make();
  agents.push(agent);
  assert.is(await agent.start(args), null, agent.log);
  const ids = [
    await volumeWithData((...a) => agent.hf(...a), "name=v1,size=64M,repl=1", 0x5a),
    await volumeWithData((...a) => agent.hf(...a), "name=v2,size=64M,repl=1", 0xa5),
  ];
  await agent.stop();
  const dirs = ids.map((id) => join(agent.dataDir, "pool", "replicas", id));
  assert.ok((await firstMiB(dirs[0] as string)).equals(Buffer.alloc(1 << 20, 0x5a)));
  assert.ok((await firstMiB(dirs[1] as string)).equals(Buffer.alloc(1 << 20, 0xa5)));
  const sums = await Promise.all(dirs.map((d) => checksums(d)));
  const intact = async () => assert.equal(await Promise.all(dirs.map((d) => checksums(d))), sums);
  return { agent, ids, intact };
}

identity(
  "under another node id: refuses to start, naming both ids; adopted, it quarantines every replica",
  async () => {
    const { agent, ids, intact } = await agentWithVolumes(["--node-id=n1"]);
    const refused = await agent.start(["--node-id=n2"]);
    assert.is(refused, 2, agent.log);
    assert.match(agent.log, /n1/);
    assert.match(agent.log, /n2/);
    assert.match(agent.log, /--adopt-identity/);
    await intact();

    assert.is(await agent.start(["--node-id=n2", "--adopt-identity"]), null, agent.log);
    const listed = await agent.json<Quarantined[]>("node", "quarantine", "list");
    assert.equal(listed.map((q) => q.volumeId).sort(), [...ids].sort());
    assert.ok(listed.every((q) => q.node === "n2"));
    await agent.stop();
    await intact();
    // Adopted once, the new identity is the recorded one: the next start needs no flag.
    assert.is(await agent.start(["--node-id=n2"]), null, agent.log);
    await agent.stop();
  },
);

identity("with another --cluster: refuses to start, naming both clusters", async () => {
  const { agent, intact } = await agentWithVolumes(["--node-id=n1", "--cluster=blue"]);
  assert.is(await agent.start(["--node-id=n1", "--cluster=green"]), 2, agent.log);
  assert.match(agent.log, /blue/);
  assert.match(agent.log, /green/);
  await intact();
});

identity("against an empty etcd: refuses to start; adopted, it quarantines every replica", async () => {
  const first = await EtcdProcess.start();
  const empty = await EtcdProcess.start();
  etcds.push(first, empty);
  const firstStore = (await first.clusterAccess("default")).agentArgs;
  const emptyStore = (await empty.clusterAccess("default")).agentArgs;
  const { agent, ids, intact } = await agentWithVolumes(["--node-id=n1", ...firstStore]);
  assert.is(await agent.start(["--node-id=n1", ...emptyStore]), 2, agent.log);
  assert.match(agent.log, /no record of cluster "default"/);
  assert.match(agent.log, /--adopt-identity/);
  await intact();

  assert.is(await agent.start(["--node-id=n1", ...emptyStore, "--adopt-identity"]), null, agent.log);
  const status = await agent.json<{ quarantine: Quarantined[] }>("cluster", "status");
  assert.equal(status.quarantine.map((q) => q.volumeId).sort(), [...ids].sort());
  await agent.stop();
  await intact();
});

identity("an orphan replica is quarantined at start, listed, and removed only by purge", async () => {
  const { agent, ids, intact } = await agentWithVolumes(["--node-id=n1"]);
  const orphanId = "0123456789abcdef";
  const orphan = join(agent.dataDir, "pool", "replicas", orphanId);
  await cp(join(agent.dataDir, "pool", "replicas", ids[0] as string), orphan, { recursive: true });
  const orphanSums = await checksums(orphan);

  assert.is(await agent.start(["--node-id=n1"]), null, agent.log);
  assert.equal(await checksums(orphan), orphanSums);
  const listed = await agent.json<Quarantined[]>("node", "quarantine", "list");
  assert.equal(
    listed.map((q) => [q.node, q.volumeId]),
    [["n1", orphanId]],
  );
  const nodes = await agent.hf("node", "list");
  assert.match(nodes.stdout, /QUARANTINED/);
  // QUARANTINED 1, then CERT EXPIRES "-": this agent has no cluster certificate.
  assert.match(nodes.stdout, /n1 .* 1\s+-$/m);
  const status = await agent.hf("cluster", "status");
  assert.match(status.stdout, /1 quarantined replica/);

  assert.is((await agent.hf("node", "quarantine", "purge")).code, 2, "purge needs an id or --node");
  assert.is((await agent.hf("node", "quarantine", "purge", "../etc")).code, 2);
  const unknown = await agent.hf("node", "quarantine", "purge", "fedcba9876543210");
  assert.is(unknown.code, 1);
  assert.match(unknown.stderr, /fedcba9876543210/);
  // A listed replica is no orphan: purge refuses it.
  assert.is((await agent.hf("node", "quarantine", "purge", ids[0] as string)).code, 1);

  const purged = await agent.json<Quarantined[]>("node", "quarantine", "purge", orphanId);
  assert.equal(
    purged.map((q) => q.volumeId),
    [orphanId],
  );
  assert.is(await exists(orphan), false);
  assert.equal(await agent.json<Quarantined[]>("node", "quarantine", "list"), []);
  await agent.stop();
  await intact();
});

identity.run();

const fabric = suite("a recorded deletion removes the replica, and nothing else");
let cluster: DevCluster;
fabric.before(async () => {
  cluster = await DevCluster.start(NET);
});
fabric.after(async () => {
  await cluster?.down();
});

const replicaOn = (node: string, id: string) => join(cluster.dir, node, "data", "pool", "replicas", id);

fabric(
  "a volume deleted while a replica's node is down: that replica goes when the node returns",
  async () => {
    const hf = (...a: string[]) => cluster.hf(a);
    const goneId = await volumeWithData(hf, "name=gone,size=64M,repl=3", 0x11);
    const keptId = await volumeWithData(hf, "name=kept,size=64M,repl=3", 0x22);
    const shrunkId = await volumeWithData(hf, "name=shrunk,size=64M,repl=3", 0x33);
    await cluster.stop("node3", "SIGTERM");
    const keptSums = await checksums(replicaOn("node3", keptId));
    assert.ok((await firstMiB(replicaOn("node3", keptId))).equals(Buffer.alloc(1 << 20, 0x22)));
    const orphanId = "00112233445566ff";
    await cp(replicaOn("node3", keptId), replicaOn("node3", orphanId), { recursive: true });

    assert.is((await cluster.hf(["volume", "delete", "gone"])).code, 0);
    for (const node of ["node1", "node2"]) assert.is(await exists(replicaOn(node, goneId)), false);
    assert.is(await exists(replicaOn("node3", goneId)), true);
    // Lowered from 3 to 2 while node3 is down: the engine drops node3's replica, on purpose and on record.
    const lowered = await cluster.hf(["volume", "update", "shrunk", "--repl", "2"]);
    assert.is(lowered.code, 0, lowered.stderr);
    const shrunk = await cluster.json<{ replicas: Array<{ node: string }> }>(["volume", "inspect", "shrunk"]);
    assert.equal(shrunk.replicas.map((r) => r.node).sort(), ["node1", "node2"]);

    const etcd = await cluster.etcdRoot();
    try {
      const tombstone = await etcd.get(`/holdfast/dev/tombstones/${goneId}`).json();
      assert.equal((tombstone as { nodes: string[] }).nodes, ["node3"]);

      await cluster.startNode("node3");
      assert.is(await exists(replicaOn("node3", goneId)), false);
      assert.is(await exists(replicaOn("node3", shrunkId)), false);
      assert.equal(await checksums(replicaOn("node3", keptId)), keptSums);
      assert.equal(await checksums(replicaOn("node3", orphanId)), keptSums);
      const listed = await cluster.json<Quarantined[]>(["node", "quarantine", "list"]);
      assert.equal(
        listed.map((q) => [q.node, q.volumeId]),
        [["node3", orphanId]],
      );
      assert.is(await etcd.get(`/holdfast/dev/tombstones/${goneId}`).string(), null);
      assert.is(await etcd.get(`/holdfast/dev/tombstones/${shrunkId}`).string(), null);

      // Purged from another node's API: the holder deletes it over the replication port.
      const purged = await cluster.json<Quarantined[]>(
        ["node", "quarantine", "purge", "--node", "node3"],
        "node1",
      );
      assert.equal(
        purged.map((q) => q.volumeId),
        [orphanId],
      );
      assert.is(await exists(replicaOn("node3", orphanId)), false);
      assert.equal(await checksums(replicaOn("node3", keptId)), keptSums);
    } finally {
      etcd.close();
    }
  },
);

fabric(
  "records planted in etcd that are not valid are reported and never acted on: no file outside the pools is touched",
  async () => {
    const victim = join(cluster.dir, "victim");
    await mkdir(victim);
    await writeFile(join(victim, "precious"), "keep me");
    // The id that would take `rm -rf` from node2's replica directory to the victim.
    const traversal = relative(join(cluster.dir, "node2", "data", "pool", "replicas"), victim);
    const root = "/holdfast/dev";
    const since = new Date().toISOString();
    const planted: Array<[string, unknown]> = [
      [
        `${root}/tombstones/${traversal}`,
        { id: traversal, name: "x", reason: "deleted", nodes: ["node2"], since },
      ],
      [
        `${root}/quarantine/node2/${traversal}`,
        { node: "node2", volumeId: traversal, pool: "/p", since: "2000-01-01T00:00:00Z", bytes: null },
      ],
      [`${root}/names/evil`, "../../etc"],
      [
        `${root}/nodes/node9`,
        {
          id: "node1",
          api: "http://127.0.50.99:9001",
          replication: "",
          zone: "z",
          rack: "r",
          capacity: 1,
          free: 1,
          joinedAt: since,
        },
      ],
    ];
    const etcd = await cluster.etcdRoot();
    try {
      for (const [key, value] of planted) {
        await etcd.put(key).value(typeof value === "string" ? value : JSON.stringify(value));
      }
      // At start a node sweeps its tombstones and quarantine: the planted ones name node2.
      await cluster.stop("node2", "SIGTERM");
      await cluster.startNode("node2");
      assert.is(await readFile(join(victim, "precious"), "utf8"), "keep me");
      const log = await readFile(join(cluster.dir, "node2", "agent.log"), "utf8");
      assert.match(log, `"key":"${root}/tombstones/${traversal}"`);
      assert.match(log, "a record that is not valid is ignored");

      const nodes = await cluster.json<Array<{ id: string; api: string }>>(["node", "list"]);
      assert.equal(
        nodes.filter((n) => n.id === "node1").map((n) => n.api),
        [`https://${NET}.11:9001`],
        "the impostor record does not redirect node1",
      );
      const evil = await cluster.hf(["volume", "inspect", "evil"]);
      assert.is.not(evil.code, 0);
      assert.match(evil.stderr, "internal error: see the agent's log for request");
      assert.is((await cluster.hf(["volume", "list"])).code, 0, "the other volumes are still listed");
    } finally {
      for (const [key] of planted) await etcd.delete().key(key);
      etcd.close();
    }
  },
);

fabric.run();

const rebuild = suite("a replica rebuilt elsewhere while its node was down");
let small: DevCluster;
rebuild.before(async () => {
  small = await DevCluster.start("127.0.51", ["--replica-timeout", "2"]);
});
rebuild.after(async () => {
  await small?.down();
});

rebuild(
  "is destroyed when its node returns, on the record the engine left, and nothing else is",
  async () => {
    const created = await small.json<{ id: string; replicas: Array<{ node: string }> }>([
      "volume",
      "create",
      "name=moved,size=64M,repl=2,nodes=node1;node2;node3",
    ]);
    const holders = created.replicas.map((r) => r.node);
    // node1 goes down whenever it holds a replica: the CLI's default node, so every ask must name a live one.
    const lost = holders.includes("node1") ? "node1" : (holders[1] as string);
    const engine = holders.find((n) => n !== lost) as string;
    await small.json(["volume", "attach", "moved"], engine);
    const stale = join(small.dir, lost, "data", "pool", "replicas", created.id);
    await small.stop(lost, "SIGTERM");
    const spare = ["node1", "node2", "node3"].find((n) => !holders.includes(n)) as string;
    // Asked of the engine's node: the CLI's default, node1, may be the one stopped (placement picks the holders).
    await waitFor("the replica rebuilt on the spare node", async () => {
      const v = await small.json<{ replicas: Array<{ node: string; state: string }> }>(
        ["volume", "inspect", "moved"],
        engine,
      );
      return v.replicas.some((r) => r.node === spare && r.state === "in-sync") ? v : undefined;
    });
    assert.is(await exists(stale), true);
    await small.startNode(lost);
    assert.is(await exists(stale), false);
    for (const node of [engine, spare]) {
      assert.is(await exists(join(small.dir, node, "data", "pool", "replicas", created.id)), true);
    }
    assert.equal(await small.json<Quarantined[]>(["node", "quarantine", "list"]), []);
  },
);

rebuild.run();
