import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { createServer, type Server } from "node:tls";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OperationError } from "../../agent/src/errors.js";
import {
  createClusterCa,
  issueNodeIdentity,
  type NodeIdentity,
  RemoteReplica,
  type RemoteReplicaOptions,
  serverTlsOptions,
} from "../../agent/src/transport/index.js";
import {
  corkedWriter,
  decodeRequest,
  encodeReply,
  FrameReader,
  Op,
  type Request,
  Status,
  WINDOW_BYTES,
  WINDOW_REQUESTS,
} from "../../agent/src/transport/wire.js";

// A RemoteReplica against replication ports that misbehave the way a stalled node does: a kernel that accepts TCP
// for a process that never runs again, a process that stops answering, and a healthy one whose fsync is slower
// than the request timeout. The bounds are set small here; each test states the one it proves.
let engine: NodeIdentity;
let replica: NodeIdentity;
const servers: Array<Server | TcpServer> = [];
const sockets = new Set<Socket>();

test.before(async () => {
  const ca = await createClusterCa({ cluster: "t" });
  engine = await issueNodeIdentity(ca, { nodeId: "node-a", addresses: ["127.0.0.1"] });
  replica = await issueNodeIdentity(ca, { nodeId: "node-b", addresses: ["127.0.0.1"] });
});
test.after(async () => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

function listen(server: Server | TcpServer): Promise<number> {
  servers.push(server);
  server.on("connection", (socket: Socket) => sockets.add(socket));
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );
}

/** What a fake replica does with a request: answer it (after a while, if it is a promise) or never answer. */
type Behaviour = (r: Request) => Buffer | undefined | Promise<Buffer | undefined> | "never";

const OPENED = Buffer.from(JSON.stringify({ size: 1 << 20, blockSize: 4096, epoch: 0 }));

/** A replication port that completes the mutual TLS handshake and answers frames as `behaviour` says. */
async function fakeReplica(behaviour: Behaviour): Promise<{ port: number; seen: Request[] }> {
  const seen: Request[] = [];
  const server = createServer(serverTlsOptions(replica), (socket) => {
    const send = corkedWriter(socket);
    const reader = new FrameReader();
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        const r = decodeRequest(frame);
        seen.push(r);
        const answer = behaviour(r);
        if (answer === "never") continue;
        void Promise.resolve(answer).then((payload) => {
          if (!socket.destroyed) send(encodeReply(Status.Ok, r.id, payload));
        });
      }
    });
  });
  return { port: await listen(server), seen };
}

const options = (port: number, bounds: Partial<RemoteReplicaOptions>): RemoteReplicaOptions => ({
  identity: engine,
  nodeId: "node-b",
  host: "127.0.0.1",
  port,
  volumeId: "0f01",
  ...bounds,
});

/** Rejects when `promise` has not settled within `ms`: the assertion that a bound holds, without a fixed sleep. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function failure(promise: Promise<unknown>): Promise<OperationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, OperationError, `expected a failure, got ${String(err)}`);
  return err as OperationError;
}

test("a port that accepts TCP but never completes the TLS handshake: the dial fails within the connect bound", async () => {
  // A frozen node: its kernel completes the TCP handshake and ACKs the ClientHello, its agent never answers.
  const port = await listen(createTcpServer(() => undefined));
  const started = Date.now();
  const connect = within(
    2500,
    "connect",
    failure(RemoteReplica.connect(options(port, { connectTimeoutMs: 500 }))),
  );
  const create = within(
    2500,
    "create",
    failure(
      RemoteReplica.create(options(port, { connectTimeoutMs: 500 }), { size: 1 << 20, blockSize: 4096 }),
    ),
  );
  for (const err of await Promise.all([connect, create])) {
    assert.is(err.code, "replica.unreachable");
    assert.match(err.message, /TLS handshake not done within 500 ms/);
  }
  assert.ok(Date.now() - started >= 450, "not before the bound");
});

test("a node that completes the handshake but never answers Open: connect fails within the liveness bound", async () => {
  const { port } = await fakeReplica(() => "never");
  const started = Date.now();
  const err = await within(
    2500,
    "connect",
    failure(RemoteReplica.connect(options(port, { connectTimeoutMs: 500, livenessTimeoutMs: 500 }))),
  );
  assert.is(err.code, "replica.unreachable");
  assert.match(err.message, /nothing from the replica for 500 ms/);
  assert.ok(Date.now() - started >= 450, "not before the bound");
});

test("a flush slower than the request timeout, on a replica that answers pings, succeeds and keeps the connection", async () => {
  const { port, seen } = await fakeReplica((r) => {
    if (r.op === Op.Open) return OPENED;
    if (r.op === Op.Flush) return new Promise((resolve) => setTimeout(() => resolve(undefined), 1500));
    if (r.op === Op.Read) return Buffer.alloc(r.count, 7);
    return undefined;
  });
  const remote = await RemoteReplica.connect(
    options(port, { requestTimeoutMs: 500, livenessTimeoutMs: 500, flushTimeoutMs: 10_000 }),
  );
  try {
    await remote.admit(1);
    await remote.flush();
    assert.ok(
      seen.some((r) => r.op === Op.Ping),
      "the engine pinged while the flush was outstanding",
    );
    assert.equal(await remote.read(0, 4096), Buffer.alloc(4096, 7), "the connection is still up");
  } finally {
    remote.close();
  }
});

test("a flush that never completes fails after the flush bound, although pings are answered", async () => {
  const { port } = await fakeReplica((r) =>
    r.op === Op.Flush ? "never" : r.op === Op.Open ? OPENED : undefined,
  );
  const remote = await RemoteReplica.connect(
    options(port, { requestTimeoutMs: 300, livenessTimeoutMs: 300, flushTimeoutMs: 1000 }),
  );
  try {
    const started = Date.now();
    const err = await within(3000, "flush", failure(remote.flush()));
    assert.match(err.message, /flush unanswered for 1000 ms/);
    assert.ok(Date.now() - started >= 950, "not before the flush bound");
  } finally {
    remote.close();
  }
});

test("a replica that stops answering everything fails after the liveness bound, and later requests fail at once", async () => {
  let frozen = false;
  const { port } = await fakeReplica((r) => (frozen ? "never" : r.op === Op.Open ? OPENED : undefined));
  const remote = await RemoteReplica.connect(options(port, { livenessTimeoutMs: 500 }));
  try {
    await remote.admit(1);
    frozen = true;
    const started = Date.now();
    const err = await within(2500, "write", failure(remote.write(0, Buffer.alloc(4096, 1))));
    assert.is(err.code, "replica.unreachable");
    assert.match(err.message, /nothing from the replica for 500 ms/);
    assert.ok(Date.now() - started >= 450, "not before the bound");
    const next = await within(100, "next read", failure(remote.read(0, 4096)));
    assert.is(next.code, "replica.unreachable");
  } finally {
    remote.close();
  }
});

test("lost settles when the replica's node closes the connection, with nothing in flight; not when this node closes it", async () => {
  let peer: Socket | undefined;
  const { port } = await fakeReplica((r) => (r.op === Op.Open ? OPENED : undefined));
  const server = servers.at(-1) as Server;
  server.on("secureConnection", (socket) => {
    peer = socket;
  });
  const remote = await RemoteReplica.connect(options(port, {}));
  try {
    await remote.admit(1);
    peer?.destroy();
    const cause = await within(2000, "lost", remote.lost);
    assert.instance(cause, OperationError);
    assert.is((cause as OperationError).code, "replica.unreachable");
  } finally {
    remote.close();
  }

  const closedHere = await RemoteReplica.connect(options(port, {}));
  let settled = false;
  void closedHere.lost.then(() => {
    settled = true;
  });
  const gone = new Promise((resolve) => peer?.once("close", resolve));
  closedHere.close();
  await gone;
  await new Promise((r) => setImmediate(r));
  assert.not.ok(settled, "closing it here is no loss");
});

/**
 * A replica that answers pings at once and holds every other answer until `release()`, and a RemoteReplica on it:
 * what the engine has outstanding is what it sent.
 */
async function heldReplica() {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { port, seen } = await fakeReplica((r) =>
    r.op === Op.Open ? OPENED : r.op === Op.Ping ? undefined : released.then(() => undefined),
  );
  const remote = await RemoteReplica.connect(options(port, { livenessTimeoutMs: 60_000 }));
  return { remote, seen, release };
}

test("the engine keeps to the window: requests past it wait in order, and all complete once answers come", async () => {
  const { remote, seen, release } = await heldReplica();
  const small = Array.from({ length: WINDOW_REQUESTS + 100 }, (_, i) =>
    remote.write(i * 4096, Buffer.alloc(4096)),
  );
  // The engine pings when it has heard nothing for a while; a ping is outside the window and the stream keeps order,
  // so once the ping is in, everything sent before it is too.
  await until(() => seen.some((r) => r.op === Op.Ping));
  const sent = () => seen.filter((r) => r.op === Op.Write);
  assert.is(sent().length, WINDOW_REQUESTS, "no more than the window is outstanding");
  release();
  await Promise.all(small);
  assert.equal(
    sent().map((r) => r.offset),
    Array.from({ length: WINDOW_REQUESTS + 100 }, (_, i) => i * 4096),
    "queued requests leave in the order they were asked",
  );
  remote.close();
});

test("the window counts bytes too: 1 MiB writes beyond its bytes wait", async () => {
  const { remote, seen, release } = await heldReplica();
  const MiB = 1024 * 1024;
  const big = Array.from({ length: WINDOW_BYTES / MiB + 8 }, (_, i) =>
    remote.write(i * MiB, Buffer.alloc(MiB)),
  );
  const sent = () => seen.filter((r) => r.op === Op.Write).length;
  await until(() => seen.some((r) => r.op === Op.Ping));
  assert.is(sent(), WINDOW_BYTES / MiB);
  release();
  await Promise.all(big);
  assert.is(sent(), WINDOW_BYTES / MiB + 8);
  remote.close();
});

/** Waits for `condition`, polling the event loop; the test's own timeout bounds it. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

test.run();
