import { rejects } from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type Socket as NetSocket, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError } from "../../agent/src/contracts/index.js";
import { Engine } from "../../agent/src/engine/index.js";
import { Replica } from "../../agent/src/replica/index.js";
import {
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  type NodeIdentity,
  RemoteReplica,
  type ReplicaPolicy,
  ReplicaServer,
  type ReplicaServerOptions,
} from "../../agent/src/transport/index.js";
import {
  decodeReply,
  encodeRequest,
  FrameReader,
  Op,
  Status,
  WINDOW_REQUESTS,
} from "../../agent/src/transport/wire.js";
import { LocalReplicas } from "../../agent/src/volumes/index.js";

// The engine-replica protocol over real mutual-TLS sockets: an engine on "node-a" writes to its local replica
// and to node-b's replica through node-b's replication port. Authorization is not what this file tests (that is
// replica-authority.test.ts and replication-authorization.test.ts): here every authenticated peer may.
const everyPeerMay: ReplicaPolicy = {
  admit: async () => undefined,
  create: async () => undefined,
  destroy: async () => undefined,
  created: () => undefined,
};
const MiB = 1024 * 1024;
/** node-b's replication port over `pool`, every peer allowed (see above), with `extra` options. */
function serverOn(pool: LocalReplicas, extra: Partial<ReplicaServerOptions> = {}): ReplicaServer {
  return new ReplicaServer({
    identity: b,
    host: "127.0.0.1",
    port: 0,
    logger: pino({ level: "silent" }),
    openReplica: (volumeId) => pool.acquire(volumeId),
    closeReplica: (volumeId) => void pool.release(volumeId),
    createReplica: (spec) => pool.create(spec),
    destroyReplica: (volumeId) => pool.destroy(volumeId),
    policy: everyPeerMay,
    ...extra,
  });
}

let dir = "";
let a: NodeIdentity;
let b: NodeIdentity;
let stranger: NodeIdentity;
let server: ReplicaServer;
let port = 0;

const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-transport-"));
  const ca = await createClusterCa({ cluster: "t" });
  a = await issueNodeIdentity(ca, { nodeId: "node-a", addresses: ["127.0.0.1"] });
  b = await issueNodeIdentity(ca, { nodeId: "node-b", addresses: ["127.0.0.1"] });
  stranger = await issueNodeIdentity(await createClusterCa({ cluster: "other" }), {
    nodeId: "node-a",
    addresses: ["127.0.0.1"],
  });
  await mkdir(join(dir, "b"));
  const pool = new LocalReplicas([join(dir, "b")]);
  await pool.create({ volumeId: "0f01", size: 64 * MiB, blockSize: 4096 });
  server = serverOn(pool);
  port = await server.listen();
});
test.after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const remote = (identity = a, nodeId = "node-b", volumeId = "0f01") =>
  RemoteReplica.connect({ identity, nodeId, host: "127.0.0.1", port, volumeId });

test("an engine fans writes out to a local and a remote replica; both hold the same bytes", async () => {
  const local = await Replica.create(join(dir, "a", "vol1"), { volumeId: "vol1", size: 64 * MiB });
  const far = await remote();
  assert.is(far.size, 64 * MiB);
  const near = local.session();
  const engine = await Engine.start({ volumeId: "vol1", epoch: 1, replicas: [near, far] });
  const blocks = Array.from({ length: 32 }, (_, i) => ({
    offset: i * 2 * MiB + 4096 * i,
    data: randomBytes(64 * 1024),
  }));
  await Promise.all(blocks.map((blk) => engine.write(blk.offset, blk.data)));
  await engine.writeZeroes(blocks[3]?.offset ?? 0, 4096);
  await engine.flush();
  for (const [i, blk] of blocks.entries()) {
    const expected = i === 3 ? Buffer.concat([Buffer.alloc(4096), blk.data.subarray(4096)]) : blk.data;
    assert.is(sha(await far.read(blk.offset, blk.data.length)), sha(expected), `remote block ${i}`);
    assert.is(sha(await near.read(blk.offset, blk.data.length)), sha(expected), `local block ${i}`);
  }
  await engine.stop();
  await local.close();
  far.close();
});

test("a newer engine fences the old one on its next request, over the wire", async () => {
  const old = await remote();
  await old.admit(5);
  await old.write(0, Buffer.alloc(4096, 1));
  const newer = await remote();
  await newer.admit(6);
  await rejects(
    () => old.write(0, Buffer.alloc(4096, 2)),
    (err: unknown) => err instanceof FencedError && err.highest === 6,
  );
  await rejects(() => old.read(0, 4096), FencedError);
  await rejects(() => old.admit(5), FencedError);
  await newer.write(4096, Buffer.alloc(4096, 3));
  assert.is((await newer.read(0, 1))[0], 1, "the fenced write never landed");
  old.close();
  newer.close();
});

test("peers without this cluster's certificate, or not the node expected, are refused", async () => {
  await rejects(() => remote(stranger), /cannot reach node-b/);
  await rejects(() => remote(a, "node-c"), /cannot reach node-c/);
  const noCert = connect({ host: "127.0.0.1", port, ca: a.caPem, checkServerIdentity: () => undefined });
  const closed = await new Promise<string>((resolve) => {
    noCert.on("error", (err) => resolve(`error: ${err.message}`));
    noCert.on("close", () => resolve("closed"));
    noCert.on("secureConnect", () => noCert.write(Buffer.alloc(64)));
  });
  assert.ok(closed === "closed" || closed.startsWith("error"), closed);
});

test("bad requests get errors, a hostile frame is disconnected, and the server keeps serving", async () => {
  await rejects(() => remote(a, "node-b", "0bad"), /replica "0bad" does not exist/);
  await rejects(() => remote(a, "node-b", "../../etc"), /volumeId must be hex/);
  const far = await remote();
  await rejects(() => far.read(0, 4096), /admit an epoch on this connection first/);
  await far.admit(7);
  await rejects(() => far.read(64 * MiB - 4096, 8192), RangeError);
  await rejects(() => far.read(0, 0xffffffff), /a read of 4294967295 bytes exceeds/);
  far.close();
  const raw = connect({ host: "127.0.0.1", port, ...clientTlsOptions(a, "node-b") });
  await new Promise((r) => raw.once("secureConnect", r));
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0xffffffff, 0);
  raw.write(huge);
  await new Promise((r) => raw.once("close", r));
  const again = await remote();
  await again.admit(8);
  assert.is((await again.read(4096, 1))[0], 3);
  again.close();
});

test("a replica whose node goes away: its requests fail at once, the engine drops it first, writes go on", async () => {
  const local = await Replica.create(join(dir, "a2", "vol1"), { volumeId: "vol1", size: 64 * MiB });
  const far = await remote();
  const dropped: string[] = [];
  let storeUp = true;
  const engine = await Engine.start({
    volumeId: "vol1",
    epoch: 10,
    replicas: [local.session(), far],
    onReplicaFailed: async (failed) => {
      if (!storeUp) throw new Error("etcd unavailable");
      dropped.push(...failed.map((r) => (r === far ? "remote" : "local")));
    },
  });
  await engine.write(0, Buffer.alloc(4096, 4));
  await server.close();
  await rejects(() => far.write(0, Buffer.alloc(4096)), /replica on node-b .* failed/);
  // Many writes in flight see the failure; the replica is dropped once, before any of them is acknowledged.
  await Promise.all(Array.from({ length: 8 }, (_, i) => engine.write(i * 4096, Buffer.alloc(4096, 5))));
  assert.equal(dropped, ["remote"]);
  assert.is(engine.inSync.length, 1);
  assert.is((await engine.read(0, 1))[0], 5);
  await engine.stop();
  await local.close();

  // When the in-sync set cannot be updated, the write is not acknowledged.
  const local2 = await Replica.create(join(dir, "a3", "vol1"), { volumeId: "vol1", size: 64 * MiB });
  const broken = await Replica.create(join(dir, "a4", "vol1"), { volumeId: "vol1", size: 64 * MiB });
  storeUp = false;
  const engine2 = await Engine.start({
    volumeId: "vol1",
    epoch: 1,
    replicas: [local2.session(), broken.session()],
    onReplicaFailed: async () => {
      throw new Error("etcd unavailable");
    },
  });
  await broken.close();
  await rejects(() => engine2.write(0, Buffer.alloc(4096, 6)), /etcd unavailable/);
  assert.is(engine2.inSync.length, 2, "the replica stays in the set when dropping it failed");
  await local2.close();
});

test("a peer past the window is not read from until it is back under; then all it sent is served", async () => {
  await mkdir(join(dir, "c"));
  const pool = new LocalReplicas([join(dir, "c")]);
  await pool.create({ volumeId: "0f02", size: 64 * MiB, blockSize: 4096 });
  // node-b's writes wait until released, so the peer's requests pile up in flight.
  let started = 0;
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const gated = (replica: Replica): Replica =>
    new Proxy(replica, {
      get(target, prop) {
        if (prop === "write") {
          return async (epoch: number, offset: number, data: Buffer) => {
            started++;
            await released;
            return target.write(epoch, offset, data);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  let pastWindow: (record: { inflight: number }) => void = () => undefined;
  const throttled = new Promise<{ inflight: number }>((resolve) => {
    pastWindow = resolve;
  });
  const logger = pino(
    { level: "warn" },
    {
      write: (line: string) => {
        const record = JSON.parse(line) as { msg: string; inflight: number };
        if (record.msg.startsWith("replication: peer past its window")) pastWindow(record);
      },
    },
  );
  const slow = serverOn(pool, {
    logger,
    openReplica: async (volumeId) => gated(await pool.acquire(volumeId)),
  });
  const slowPort = await slow.listen();
  const raw = connect({ host: "127.0.0.1", port: slowPort, ...clientTlsOptions(a, "node-b") });
  await new Promise((r) => raw.once("secureConnect", r));
  const frames = new FrameReader();
  const answers: number[] = [];
  let answered: () => void = () => undefined;
  raw.on("data", (chunk: Buffer) => {
    for (const frame of frames.push(chunk)) answers.push(decodeReply(frame).status);
    answered();
  });
  const answersReach = (n: number) =>
    new Promise<void>((resolve) => {
      answered = () => answers.length >= n && resolve();
      answered();
    });
  const sendRaw = (op: number, id: number, epoch: number, offset: number, payload?: Buffer) => {
    for (const part of encodeRequest({ op, id, epoch, offset, count: payload?.length ?? 0 }, payload)) {
      raw.write(part);
    }
  };
  sendRaw(Op.Open, 1, 0, 0, Buffer.from(JSON.stringify({ volumeId: "0f02" })));
  sendRaw(Op.Admit, 2, 1, 0);
  await answersReach(2);
  // Twice the window, in one go: a peer that ignores it.
  const FLOOD = 2 * WINDOW_REQUESTS;
  for (let i = 0; i < FLOOD; i++) sendRaw(Op.Write, 3 + i, 1, i * 4096, Buffer.alloc(4096, i & 0xff));
  const allStarted = (async () => {
    while (started < FLOOD) await new Promise((resolve) => setImmediate(resolve));
    return "every write started at once: the window was not kept";
  })();
  try {
    const record = await Promise.race([throttled, allStarted]);
    assert.type(record, "object", String(record));
    assert.is(
      (record as { inflight: number }).inflight,
      WINDOW_REQUESTS + 1,
      "it stopped reading just past the window",
    );
    release();
    await answersReach(2 + FLOOD);
    assert.ok(
      answers.every((status) => status === Status.Ok),
      "every request it sent is served",
    );
    assert.is(started, FLOOD);
  } finally {
    release();
    raw.destroy();
    await slow.close();
  }
  await pool.release("0f02");
});

test("connections that never finish the handshake or never ask are closed; past the cap a new one is closed at once", async () => {
  await mkdir(join(dir, "d"));
  const pool = new LocalReplicas([join(dir, "d")]);
  await pool.create({ volumeId: "0f03", size: 64 * MiB, blockSize: 4096 });
  const bounded = serverOn(pool, { handshakeTimeoutMs: 300, maxConnections: 2 });
  const boundedPort = await bounded.listen();
  const closed = (socket: NetSocket) => new Promise<void>((resolve) => socket.once("close", () => resolve()));
  try {
    // A TCP connection that never starts TLS, and a TLS one that never sends a request.
    const mute = netConnect(boundedPort, "127.0.0.1").resume();
    await closed(mute);
    const quiet = connect({
      host: "127.0.0.1",
      port: boundedPort,
      ...clientTlsOptions(a, "node-b"),
    }).resume();
    await new Promise((r) => quiet.once("secureConnect", r));
    await closed(quiet);

    // Two that talk stay; a third is closed before its handshake completes.
    const talking = await Promise.all(
      [0, 1].map(async () => {
        const r = await RemoteReplica.connect({
          identity: a,
          nodeId: "node-b",
          host: "127.0.0.1",
          port: boundedPort,
          volumeId: "0f03",
        });
        await r.admit(1);
        return r;
      }),
    );
    const third = connect({ host: "127.0.0.1", port: boundedPort, ...clientTlsOptions(a, "node-b") });
    third.on("error", () => undefined);
    let secured = false;
    third.once("secureConnect", () => {
      secured = true;
    });
    await closed(third);
    assert.not.ok(secured, "the third connection was served");
    for (const t of talking) assert.equal(await t.activeRegions(), [], "the first two still answer");
    for (const t of talking) t.close();
  } finally {
    await bounded.close();
  }
});

test.run();
