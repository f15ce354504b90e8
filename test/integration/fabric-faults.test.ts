import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { sh } from "../support/agent-process.js";
import { DevCluster, inSync, run, type VolumeJson, waitFor } from "../support/dev-cluster.js";

// Faults around the data path on a real 3-node dev cluster (127.0.2.11-13): the metadata store stopped under load,
// and a replica whose pool fills up.
let cluster: DevCluster;
let tmpfs = "";

function fio(socket: string, name: string, extra: string[]) {
  return run(
    [
      "--name=w",
      "--ioengine=nbd",
      `--uri=nbd+unix:///${name}?socket=${socket}`,
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=16",
      "--verify=crc32c",
      "--verify_state_save=0",
      "--do_verify=1",
      "--verify_fatal=1",
      ...extra,
    ],
    {},
    "fio",
  );
}

test.before(async () => {
  cluster = await DevCluster.start("127.0.2", ["--nodes", "3", "--lease-ttl", "2"]);
});
test.after(async () => {
  if (tmpfs) {
    await cluster.stop("node3", "SIGTERM").catch(() => undefined);
    await sh("umount", ["-l", tmpfs]).catch(() => undefined);
  }
  await cluster?.down();
});

test("etcd stopped for 30 s under fio load: I/O goes on, control operations fail clearly, nothing is lost", async () => {
  const etcdPid = JSON.parse(await readFile(join(cluster.dir, "dev.json"), "utf8")).etcd.pid as number;
  await cluster.json(["volume", "create", "name=flat,size=256M,repl=3"]);
  const attached = await cluster.json<VolumeJson>(["volume", "attach", "flat"]);
  const load = fio(cluster.nbdSocket("node1", "flat"), "flat", [
    "--size=96M",
    "--time_based",
    "--runtime=40",
  ]);
  await new Promise((r) => setTimeout(r, 3000));
  process.kill(etcdPid, "SIGSTOP");
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const create = await cluster.hf(["volume", "create", "name=during,size=64M"]);
    assert.is(create.code, 1);
    assert.match(create.stderr, /metadata store .*unavailable/);
    await new Promise((r) => setTimeout(r, 25_000));
  } finally {
    process.kill(etcdPid, "SIGCONT");
  }
  const done = await load;
  assert.is(done.code, 0, done.stdout + done.stderr);
  assert.match(done.stdout, /err= 0/);
  const after = await waitFor("the cluster to answer again", async () =>
    cluster.json<VolumeJson>(["volume", "inspect", "flat"]),
  );
  assert.is(after.attachedOn, "node1", "the attachment survived");
  assert.is(after.epoch, attached.epoch, "with the same epoch");
  assert.equal(inSync(after), ["node1", "node2", "node3"], "no replica was dropped for the store's outage");
  await waitFor("every node up again", async () => {
    const nodes = await cluster.json<Array<{ state: string }>>(["node", "list"]);
    return nodes.every((n) => n.state === "up") ? true : undefined;
  });
  assert.equal((await cluster.json<{ differing: number[] }>(["volume", "check", "flat"])).differing, []);
});

test("a replica whose pool fills up is dropped, and the volume goes on without a stall or an error", async () => {
  // node3's pool becomes a 24 MiB tmpfs: its replica of a 256 MiB volume runs out of space part way.
  await cluster.stop("node3", "SIGTERM");
  tmpfs = join(cluster.dir, "node3", "data", "pool");
  await sh("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", tmpfs]);
  await cluster.startNode("node3");
  await cluster.json(["volume", "create", "name=full,size=256M,repl=3,nodes=node1;node2;node3"]);
  await cluster.json(["volume", "attach", "full"]);
  const done = await fio(cluster.nbdSocket("node1", "full"), "full", ["--size=128M"]);
  assert.is(done.code, 0, done.stdout + done.stderr);
  assert.match(done.stdout, /err= 0/);
  const v = await cluster.json<VolumeJson>(["volume", "inspect", "full"]);
  assert.equal(inSync(v), ["node1", "node2"]);
  assert.is(v.health, "degraded");
  const log = await readFile(join(cluster.dir, "node1", "agent.log"), "utf8");
  assert.match(log, /replica failed: leaving the in-sync set.*ENOSPC|ENOSPC.*replica failed/);
  assert.equal((await cluster.json<{ differing: number[] }>(["volume", "check", "full"])).differing, []);
});

test.run();
