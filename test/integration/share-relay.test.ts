import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  GaneshaServer,
  type LocalExport,
  RELAY_PROTOCOL,
  type ServingNode,
  ShareEndpoint,
  serveRelayed,
} from "../../agent/src/shared-volumes/index.js";
import {
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  type NodeIdentity,
  ReplicaServer,
} from "../../agent/src/transport/index.js";
import { freePort } from "../support/agent-process.js";
import { NfsClient, NfsError } from "../support/nfs-client.js";

// The relay between nodes, over real sockets: node A serves a directory with a real Ganesha and relays NFS streams
// on its replication port (mutual TLS, ALPN holdfast-nfs/1); node B (and A itself) offer the volume on a loopback
// endpoint. The client is libnfs. The agent wiring (store lookups, the volume's own file system) comes on top.
const VOLUME_ID = "5ea7ed0000000001";
const NAME = "relayed";
const logger = pino({ level: "silent" });
const CREATE = constants.O_CREAT | constants.O_WRONLY | constants.O_TRUNC;
const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const pattern = (length: number, seed: number) => {
  const data = Buffer.alloc(length);
  for (let i = 0; i < length; i++) data[i] = (i * 13 + seed * 101 + (i >> 9)) & 0xff;
  return data;
};

let dir: string;
let exported: string;
let a: NodeIdentity;
let b: NodeIdentity;
let outsider: NodeIdentity;
/** Which node's Ganesha serves the volume now, as the store would say. */
let serving: ServingNode | undefined;
interface Node {
  ganesha?: GaneshaServer;
  replication: ReplicaServer;
  /** The replication port's address. */
  host: string;
  port: number;
}
const servers = new Map<string, Node>();
let endpointB: ShareEndpoint;

const urlOf = (endpoint: ShareEndpoint) =>
  `nfs://${endpoint.address.host}/${NAME}?version=4&nfsport=${endpoint.address.port}`;

/** A node: its replication port on `host`, relaying to the Ganesha it runs (if any). */
async function startNode(nodeId: string, identity: NodeIdentity, host: string): Promise<void> {
  const localExport = (volumeId: string): LocalExport | undefined =>
    volumeId === VOLUME_ID && node.ganesha ? node.ganesha.address : undefined;
  const node: Node = {
    host,
    replication: new ReplicaServer({
      identity,
      host,
      port: 0,
      logger,
      openReplica: () => Promise.reject(new Error("no replicas in this test")),
      closeReplica: () => undefined,
      createReplica: () => Promise.reject(new Error("no replicas in this test")),
      destroyReplica: () => Promise.reject(new Error("no replicas in this test")),
      policy: {
        admit: () => Promise.reject(new Error("no")),
        create: () => Promise.reject(new Error("no")),
        destroy: () => Promise.reject(new Error("no")),
        created: () => undefined,
      },
      streams: {
        [RELAY_PROTOCOL]: (socket, peer) => serveRelayed(socket, peer, localExport, logger),
      },
    }),
    port: 0,
  };
  node.port = await node.replication.listen();
  servers.set(nodeId, node);
}

/** Starts Ganesha on the node, listening on `host` (loopback, apart from the replication port). */
async function serveOn(nodeId: string, host: string): Promise<void> {
  const node = servers.get(nodeId);
  assert.ok(node);
  node.ganesha = await GaneshaServer.start({
    export: {
      volumeId: VOLUME_ID,
      volumeName: NAME,
      path: exported,
      recoveryRoot: join(dir, "volume", "nfs-recovery"),
      bindAddress: host,
      port: await freePort(host),
      leaseSeconds: 10,
      graceSeconds: 10,
    },
    runDir: join(dir, `run-${nodeId}`),
    logger,
  });
  serving = { nodeId, host: node.host, port: node.port };
}

function endpointOn(identity: NodeIdentity, host: string, waitMs?: number): Promise<ShareEndpoint> {
  return freePort(host).then((port) =>
    ShareEndpoint.open({
      volumeId: VOLUME_ID,
      host,
      port,
      identity: () => identity,
      locate: async () => serving,
      logger,
      waitMs,
    }),
  );
}

const mountB = () => NfsClient.mount(urlOf(endpointB), { timeoutMs: 20_000 });

/** Runs `work` until the server has left its grace period (libnfs does not reclaim, so it waits it out). */
async function afterGrace<T>(work: () => Promise<T>): Promise<T> {
  for (const deadline = Date.now() + 60_000; ; ) {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof NfsError && err.status === "NFS4ERR_GRACE") || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** One relayed stream opened by hand: what the serving node answers to `header`. */
function relayAnswer(identity: NodeIdentity, header: Buffer): Promise<string> {
  const target = serving;
  assert.ok(target);
  return new Promise((resolve) => {
    const socket = connectTls({
      ...clientTlsOptions(identity, target.nodeId),
      host: target.host,
      port: target.port,
      ALPNProtocols: [RELAY_PROTOCOL],
    });
    let answer = "";
    socket.on("secureConnect", () => socket.write(header));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
    });
    socket.on("error", (err) => resolve(`error: ${err.message}`));
    socket.on("close", () => resolve(answer));
  });
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-relay-"));
  exported = join(dir, "volume", "data");
  await mkdir(exported, { recursive: true });
  const ca = await createClusterCa({ cluster: "relay" });
  a = await issueNodeIdentity(ca, { nodeId: "node-a", addresses: ["127.0.120.10"] });
  b = await issueNodeIdentity(ca, { nodeId: "node-b", addresses: ["127.0.120.20"] });
  const c = await issueNodeIdentity(ca, { nodeId: "node-c", addresses: ["127.0.120.40"] });
  const otherCa = await createClusterCa({ cluster: "elsewhere" });
  outsider = await issueNodeIdentity(otherCa, { nodeId: "node-b", addresses: ["127.0.120.30"] });
  await startNode("node-a", a, "127.0.120.10");
  await startNode("node-c", c, "127.0.120.40");
  await serveOn("node-a", "127.0.120.11");
  endpointB = await endpointOn(b, "127.0.120.21");
});

test.after(async () => {
  await endpointB?.close();
  for (const node of servers.values()) {
    await node.ganesha?.stop();
    await node.replication.close();
  }
  await rm(dir, { recursive: true, force: true });
});

test("a client on node B reads and writes the volume node A serves, through B's endpoint and mutual TLS", async () => {
  const client = await mountB();
  try {
    await client.mkdir("/through-b");
    for (const [i, size] of [1, 3001, 200_000].entries()) {
      await client.writeFile(`/through-b/f${i}`, pattern(size, i), CREATE);
      assert.is(
        sha(await readFile(join(exported, "through-b", `f${i}`))),
        sha(pattern(size, i)),
        "on A's disk",
      );
      assert.is(sha(await client.readFile(`/through-b/f${i}`)), sha(pattern(size, i)), "read back through B");
    }
  } finally {
    client.close();
  }
});

test("a node without this cluster's certificate gets no stream; the relay serves on", async () => {
  const answer = await relayAnswer(outsider, Buffer.from(`${VOLUME_ID}\n`));
  assert.not.match(answer, /^OK/, "no export for a certificate of another CA");
  const client = await mountB();
  client.close();
});

test("a stream for a volume not served there, or with a malformed header, is refused; the relay serves on", async () => {
  assert.match(await relayAnswer(b, Buffer.from("00000000000000ff\n")), /^ERR shared\.not_served /);
  assert.match(await relayAnswer(b, Buffer.from("../../etc/passwd\n")), /^ERR shared\.bad_header /);
  assert.is(await relayAnswer(b, pattern(300, 1)), "", "a header past 128 bytes is cut without an answer");
  const client = await mountB();
  try {
    assert.is(sha(await client.readFile("/through-b/f2")), sha(pattern(200_000, 2)));
  } finally {
    client.close();
  }
});

test("malformed NFS traffic through the endpoint reaches Ganesha and is refused there; all three live on", async () => {
  const ganeshaPid = servers.get("node-a")?.ganesha?.pid;
  for (const bytes of [pattern(5000, 3), Buffer.from([0xff, 0xff, 0xff, 0xff, 0])]) {
    await new Promise<void>((resolve) => {
      const socket = connectTcp(endpointB.address, () => socket.end(bytes));
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
      socket.resume();
    });
  }
  const client = await mountB();
  client.close();
  assert.is(servers.get("node-a")?.ganesha?.pid, ganeshaPid);
});

test("the server moves to node C: B's endpoint keeps its address, holds a client while none serves, then reaches C", async () => {
  const before = endpointB.address;
  await servers.get("node-a")?.ganesha?.stop();
  serving = undefined;
  const mounting = mountB();
  for (const deadline = Date.now() + 10_000; endpointB.waiting === 0; ) {
    assert.ok(Date.now() < deadline, "the endpoint holds the client's connection while no node serves");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await serveOn("node-c", "127.0.120.41");
  const client = await mounting;
  try {
    assert.equal(endpointB.address, before);
    assert.is(endpointB.waiting, 0);
    const moved = await afterGrace(() => client.readFile("/through-b/f1"));
    assert.is(sha(moved), sha(pattern(3001, 1)), "what A served, now from C");
  } finally {
    client.close();
  }
});

test("an endpoint gives up on a client when no node serves within its wait, and says so by closing", async () => {
  const saved = serving;
  serving = undefined;
  const brief = await endpointOn(b, "127.0.120.22", 300);
  try {
    const closed = await new Promise<boolean>((resolve) => {
      const socket = connectTcp(brief.address);
      socket.on("error", () => resolve(true));
      socket.on("close", () => resolve(true));
      socket.resume();
    });
    assert.ok(closed);
    assert.is(brief.waiting, 0);
  } finally {
    serving = saved;
    await brief.close();
  }
});

test.run();
