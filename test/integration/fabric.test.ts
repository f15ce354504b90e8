import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { apiOverTls, sh } from "../support/agent-process.js";
import { DevCluster, inSync, run, type VolumeJson, waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";

// The fabric on a real 4-node dev cluster (real etcd, real agents on 127.0.1.11-14, zones a-d), driven by the CLI,
// with real NBD clients: replicas killed with SIGKILL, the attached node killed, a node lost for good.
const MiB = 1024 * 1024;
let cluster: DevCluster;

const inspect = (name: string, node?: string) => cluster.json<VolumeJson>(["volume", "inspect", name], node);
const nodesOf = (v: VolumeJson) => v.replicas.map((r) => r.node).sort();

/** A gauge of `volume` on node1's /metrics (https, the cluster CA), or undefined when it is absent. */
async function gauge(name: string, volume: string): Promise<number | undefined> {
  const res = await apiOverTls(`${cluster.up.nodes[0]?.api}/metrics`, {
    token: cluster.up.token,
    ca: await readFile(cluster.up.ca, "utf8"),
  });
  const line = new RegExp(`^${name}\\{volume="${volume}"\\} (\\S+)$`, "m").exec(String(res.body));
  return line ? Number(line[1]) : undefined;
}

async function check(name: string): Promise<{ replicas: string[]; differing: number[] }> {
  return cluster.json(["volume", "check", name]);
}

test.before(async () => {
  cluster = await DevCluster.start("127.0.1", ["--nodes", "4", "--lease-ttl", "2", "--replica-timeout", "6"]);
});
test.after(async () => {
  await cluster?.down();
});

test("placement: replicas spread over zones as asked; an impossible placement is refused with the reason", async () => {
  const spread = await cluster.json<VolumeJson>(["volume", "create", "name=spread,size=64M,repl=3"]);
  const zones = new Set(spread.replicas.map((r) => cluster.up.nodes.find((n) => n.id === r.node)?.zone));
  assert.is(zones.size, 3, "three replicas in three zones");
  const pinned = await cluster.json<VolumeJson>([
    "volume",
    "create",
    "name=pinned,size=64M,repl=2,zones=zone-b;zone-d",
  ]);
  assert.equal(nodesOf(pinned), ["node2", "node4"]);
  const refused = await cluster.hf(["volume", "create", "name=nope,size=64M,repl=2,zones=zone-a"]);
  assert.is(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /zones: needs 2 more node\(s\).*only 1 eligible/);
  const tooMany = await cluster.hf(["volume", "create", "name=nope,size=64M,repl=3,nodes=node1;node2"]);
  assert.is(tooMany.code, 2);
  assert.match(tooMany.stderr, /nodes: .*node3 \(not in nodes=\)/);
  for (const name of ["spread", "pinned"]) assert.is((await cluster.hf(["volume", "delete", name])).code, 0);
});

test("kill a replica: fio verifies through the kill, the volume is degraded, then resyncs and check finds them identical", async () => {
  await cluster.json(["volume", "create", "name=k1,size=256M,repl=3,nodes=node1;node2;node3"]);
  await cluster.json(["volume", "attach", "k1"], "node1");
  const uri = `nbd+unix:///k1?socket=${cluster.nbdSocket("node1", "k1")}`;
  const killer = new Promise<void>((resolve) => setTimeout(() => cluster.stop("node3").then(resolve), 1500));
  const fio = await run(
    [
      "--name=w",
      "--ioengine=nbd",
      `--uri=${uri}`,
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=16",
      "--size=128M",
      "--io_size=256M",
      "--verify=crc32c",
      "--verify_state_save=0",
      "--do_verify=1",
      "--verify_fatal=1",
    ],
    {},
    "fio",
  );
  await killer;
  assert.is(fio.code, 0, fio.stdout + fio.stderr);
  assert.match(fio.stdout, /err= 0/);
  const degraded = await inspect("k1");
  assert.is(degraded.health, "degraded");
  assert.equal(inSync(degraded), ["node1", "node2"]);
  // The engine's node says so on /metrics too.
  assert.is(await gauge("holdfast_volume_replicas_in_sync", "k1"), 2);
  assert.is(await gauge("holdfast_volume_replicas_wanted", "k1"), 3);
  await cluster.startNode("node3");
  const healed = await waitFor("node3 back in sync", async () => {
    const v = await inspect("k1");
    return inSync(v).length === 3 ? v : undefined;
  });
  assert.is(healed.health, "healthy");
  await waitFor("node1's /metrics to count 3 in sync", async () =>
    (await gauge("holdfast_volume_replicas_in_sync", "k1")) === 3 ? true : undefined,
  );
  const result = await check("k1");
  assert.equal(result.replicas.sort(), ["node1", "node2", "node3"]);
  assert.equal(result.differing, [], "no region differs");
  const verify = await run(
    [
      "--name=v",
      "--ioengine=nbd",
      `--uri=${uri}`,
      "--rw=randwrite",
      "--bs=4k",
      "--size=128M",
      "--verify=crc32c",
      "--verify_state_save=0",
      "--verify_only",
    ],
    {},
    "fio",
  );
  assert.is(verify.code, 0, verify.stdout + verify.stderr);
});

/** What the writers saw: the last acknowledged content of each block, and each lane's write still in flight. */
interface Written {
  acked: Map<number, Buffer>;
  /** A write sent but not answered when the agent died: it may or may not have landed, and either is correct. */
  inFlight: Map<number, Buffer>;
}

/** Writes 4 KiB blocks over four connections until the socket dies. */
async function writeUntilKilled(socket: string, onStarted: () => void): Promise<Written> {
  const written: Written = { acked: new Map(), inFlight: new Map() };
  let cookie = 1n;
  let started = false;
  const writer = async (lane: number) => {
    const { client } = await RawNbdClient.open(socket, "k2");
    try {
      for (let generation = 0; ; generation++) {
        for (let i = 0; i < 512; i++) {
          const block = lane * 512 + ((i * 7919) % 512);
          const data = createHash("sha256").update(`${block}:${generation}`).digest();
          const payload = Buffer.alloc(4096, data);
          written.inFlight.set(block, payload);
          const reply = await client.request({
            type: NBD.CMD_WRITE,
            cookie: cookie++,
            offset: block * 4096,
            length: 4096,
            payload,
          });
          if (reply.error !== 0) return;
          written.inFlight.delete(block);
          written.acked.set(block, payload);
          if (!started && written.acked.size > 256) {
            started = true;
            onStarted();
          }
        }
      }
    } catch {
      // The agent died under us: what was acknowledged is in `acked`, the one unanswered write in `inFlight`.
    } finally {
      client.close();
    }
  };
  await Promise.all([0, 1, 2, 3].map(writer));
  return written;
}

test("kill the attached node: another node takes over once its lease expired, and every acknowledged write is there", async () => {
  await cluster.json(["volume", "create", "name=k2,size=64M,repl=3,nodes=node1;node2;node3"]);
  const attached = await cluster.json<VolumeJson>(["volume", "attach", "k2"], "node1");
  const refused = await cluster.hf(["volume", "attach", "k2", "--node", "node2"]);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /attached on node node1, which is up/);
  const { acked, inFlight } = await writeUntilKilled(
    cluster.nbdSocket("node1", "k2"),
    () => void cluster.stop("node1"),
  );
  assert.ok(acked.size > 256, `${acked.size} blocks acknowledged before the kill`);
  try {
    await readBackAfterFailover(attached, acked, inFlight);
  } finally {
    await cluster.startNode("node1");
  }
  const result = await waitFor("node1's replica back in sync", async () => {
    const v = await inspect("k2", "node2");
    return inSync(v).length === 3 ? check("k2") : undefined;
  });
  assert.equal(result.differing, []);
});

async function readBackAfterFailover(
  attached: VolumeJson,
  acked: Map<number, Buffer>,
  inFlight: Map<number, Buffer>,
): Promise<void> {
  const moved = await waitFor(
    "node2 to take over",
    async () => {
      const r = await cluster.hf(["volume", "attach", "k2", "--output", "json"], "node2");
      return r.code === 0 ? (JSON.parse(r.stdout) as VolumeJson) : undefined;
    },
    30_000,
  );
  assert.is(moved.attachedOn, "node2");
  assert.ok((moved.epoch ?? 0) > (attached.epoch ?? 0), "a higher epoch");
  const { client } = await RawNbdClient.open(cluster.nbdSocket("node2", "k2"), "k2");
  let cookie = 1n;
  for (const [block, expected] of acked) {
    const r = await client.request({
      type: NBD.CMD_READ,
      cookie: cookie++,
      offset: block * 4096,
      length: 4096,
    });
    assert.is(r.error, 0);
    const landed = r.data?.equals(expected) || r.data?.equals(inFlight.get(block) ?? Buffer.alloc(0));
    assert.ok(landed, `block ${block} holds its last acknowledged write (or the one in flight at the kill)`);
  }
  client.close();
}

test("the replication port refuses a peer without a certificate of this cluster's CA", async () => {
  // TLS 1.3 finishes the client's side of the handshake before the server judges its certificate: the refusal
  // shows on the first read, as an alert (no certificate) or a closed connection (a stranger's certificate).
  const noCert = await sh("sh", [
    "-c",
    "(sleep 1; echo hello) | timeout 10 openssl s_client -connect 127.0.1.12:9002 2>&1; true",
  ]);
  assert.match(noCert, /alert certificate required/);
  const stranger = await sh("sh", [
    "-c",
    `cd "$(mktemp -d)" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=node1 2>/dev/null && (sleep 1; echo hello) | timeout 10 openssl s_client -connect 127.0.1.12:9002 -cert c.pem -key k.pem 2>&1; true`,
  ]);
  assert.match(stranger, /alert|unexpected eof/);
  const log = await readFile(join(cluster.dir, "node2", "agent.log"), "utf8");
  assert.match(log, /replication: peer refused/);
});

test("lose a node for good: after the replica timeout its replica is rebuilt on the fourth node, placed by the rules", async () => {
  await cluster.json(["volume", "create", "name=k4,size=64M,repl=3"]);
  const before = await inspect("k4");
  const [attachOn, , victim] = nodesOf(before) as [string, string, string];
  await cluster.json(["volume", "attach", "k4"], attachOn);
  const payload = Buffer.alloc(MiB, 7);
  const { client } = await RawNbdClient.open(cluster.nbdSocket(attachOn, "k4"), "k4");
  const w = await client.request({ type: NBD.CMD_WRITE, cookie: 1n, offset: 8 * MiB, length: MiB, payload });
  assert.is(w.error, 0);
  client.close();
  await cluster.stop(victim);
  const rebuilt = await waitFor(
    "a replica rebuilt elsewhere",
    async () => {
      const v = await inspect("k4", attachOn);
      return inSync(v).length === 3 && !nodesOf(v).includes(victim) ? v : undefined;
    },
    60_000,
  );
  const spare = cluster.up.nodes.map((n) => n.id).find((id) => !nodesOf(before).includes(id));
  assert.ok(nodesOf(rebuilt).includes(spare as string), `rebuilt on ${spare}`);
  const zones = new Set(rebuilt.replicas.map((r) => cluster.up.nodes.find((n) => n.id === r.node)?.zone));
  assert.is(zones.size, 3, "still one replica per zone");
  assert.equal((await check("k4")).differing, []);
});

test.run();
