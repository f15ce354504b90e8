import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { sh, stopChild } from "../support/agent-process.js";
import { DevCluster, waitFor } from "../support/dev-cluster.js";
import { callPlugin, type PluginAnswer } from "../support/docker-plugin.js";

// A real PostgreSQL on a repl=3 volume mounted through the Docker volume plugin (as dockerd calls it) on node1 of a
// 3-node dev cluster (127.0.4.x). pgbench commits transactions; node1's agent and PostgreSQL are killed with
// SIGKILL; the plugin's Mount on node2 takes the volume over; PostgreSQL recovers there and holds every transaction
// pgbench saw committed. PostgreSQL runs as the `postgres` user, as initdb requires.
const SPEC = "name=pg,size=1G,repl=3";
const PG_PORT = "5499";
let cluster: DevCluster;
let plugins: string[] = [];
let bench: ChildProcess | undefined;
let pgDir = "";

async function plugin(node: number, path: string, body: unknown): Promise<PluginAnswer["body"]> {
  return (await callPlugin(plugins[node] as string, path, body)).body;
}

const asPostgres = (cmd: string, args: string[]) => sh("runuser", ["-u", "postgres", "--", cmd, ...args]);
const psql = (sql: string) =>
  asPostgres("psql", ["-h", "/tmp", "-p", PG_PORT, "-d", "postgres", "-tA", "-c", sql]).then((s) => s.trim());

/** Transactions pgbench logged as done (`-l` writes one line per committed transaction). */
async function loggedCommits(dir: string): Promise<number> {
  let lines = 0;
  for (const f of (await readdir(dir)).filter((f) => f.startsWith("pgbench_log"))) {
    lines += (await readFile(join(dir, f), "utf8")).split("\n").filter((l) => l.trim()).length;
  }
  return lines;
}

/** `pgdata` on the mounted volume, owned by postgres, with the directories above it traversable (only) by it. */
async function pgDataDir(mountpoint: string): Promise<string> {
  for (let dir = mountpoint; dir.startsWith(cluster.dir); dir = dirname(dir)) await sh("chmod", ["o+x", dir]);
  await sh("chmod", ["o+x", dirname(cluster.dir)]);
  const data = join(mountpoint, "pgdata");
  await sh("install", ["-d", "-o", "postgres", "-m", "700", data]);
  return data;
}

test.before(async () => {
  cluster = await DevCluster.start("127.0.4", ["--nodes", "3", "--lease-ttl", "2"]);
  const up = cluster.up as unknown as { nodes: Array<{ plugin: string }> };
  plugins = up.nodes.map((n) => n.plugin);
  pgDir = (await sh("mktemp", ["-d", "/tmp/hf-pgbench.XXXXXX"])).trim();
  await sh("chown", ["postgres", pgDir]);
});
test.after(async () => {
  await stopChild(bench, "SIGKILL");
  await sh("sh", ["-c", `pkill -9 -f "[p]ostgres.*-p ${PG_PORT}" || true`]);
  await cluster?.down();
  await sh("rm", ["-rf", pgDir]);
});

test("PostgreSQL on a repl=3 volume survives SIGKILL of its node: Mount on another node, recovery, no committed transaction lost", async () => {
  const created = await plugin(0, "/VolumeDriver.Create", { Name: SPEC, Opts: {} });
  assert.is(created.Err, "");
  const mounted = await plugin(0, "/VolumeDriver.Mount", { Name: SPEC, ID: "pg-container-1" });
  assert.is(mounted.Err, "");
  const data = await pgDataDir(mounted.Mountpoint as string);
  await asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres"]);
  const start = (dir: string) =>
    asPostgres("pg_ctl", [
      "-D",
      dir,
      "-l",
      join(pgDir, "pg.log"),
      "-w",
      "-o",
      `-p ${PG_PORT} -k /tmp -c listen_addresses=''`,
      "start",
    ]);
  await start(data);
  await asPostgres("pgbench", ["-h", "/tmp", "-p", PG_PORT, "-i", "-s", "2", "postgres"]);

  // pgbench logs each transaction once its COMMIT returned; it runs until PostgreSQL dies under it.
  bench = spawn(
    "runuser",
    [
      "-u",
      "postgres",
      "--",
      "pgbench",
      "-h",
      "/tmp",
      "-p",
      PG_PORT,
      "-c",
      "4",
      "-T",
      "120",
      "-l",
      "postgres",
    ],
    { cwd: pgDir, stdio: "ignore" },
  );
  const benchExited = new Promise((resolve) => bench?.once("exit", resolve));
  await waitFor("pgbench to commit transactions", async () =>
    (await loggedCommits(pgDir)) > 200 ? true : undefined,
  );
  await sh("sh", ["-c", `pkill -9 -f "[p]ostgres.*-p ${PG_PORT}" || true`]);
  await cluster.stop("node1");
  await benchExited;
  const committed = await loggedCommits(pgDir);

  const moved = await waitFor("the plugin on node2 to take the volume over", async () => {
    const r = await plugin(1, "/VolumeDriver.Mount", { Name: SPEC, ID: "pg-container-2" });
    return r.Err ? undefined : r;
  });
  const data2 = await pgDataDir(moved.Mountpoint as string);
  await start(data2);
  const rows = Number(await psql("select count(*) from pgbench_history"));
  assert.ok(committed > 200, `${committed} transactions committed before the kill`);
  assert.ok(rows >= committed, `pgbench_history holds ${rows} rows, at least the ${committed} committed`);
  await asPostgres("pg_ctl", ["-D", data2, "-w", "-m", "fast", "stop"]);
  const unmounted = await plugin(1, "/VolumeDriver.Unmount", { Name: SPEC, ID: "pg-container-2" });
  assert.is(unmounted.Err, "");
  // node1 comes back and clears what its killed agent left on the host (the dead FUSE file, loop, mount).
  await cluster.startNode("node1");
});

test.run();
