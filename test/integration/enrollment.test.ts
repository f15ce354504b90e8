import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "node:tls";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { requestCertificate, withJoinToken } from "../../agent/src/enrollment/index.js";
import {
  certificateFacts,
  clientTlsOptions,
  loadIdentity,
  type NodeIdentity,
  RemoteReplica,
} from "../../agent/src/transport/index.js";
import { apiOverTls, HOLDFAST, stopChild } from "../support/agent-process.js";
import {
  DevCluster,
  devEtcdStore,
  inSync,
  NbdLane,
  type VolumeJson,
  waitFor,
} from "../support/dev-cluster.js";
import { JoiningNode } from "../support/joining-node.js";

// Enrollment with real agents, a real etcd and a real signer process, on 127.0.80.x: node1 is a dev node (its
// certificate issued by `dev up`); node2 starts with no certificate and a join token, and the signer
// (`holdfast cluster sign --watch`) answers it with 45-second certificates, so node2 renews about every 30 s.
const VALID_S = 45;
let cluster: DevCluster;
let signer: ChildProcess;
let signerLog = "";
let node2: JoiningNode;
let tokenId = "";
let token = "";

const hf = (args: string[], node?: string) => cluster.hf(args, node);
/** node2's /metrics, over its https API. */
const node2Metrics = async () =>
  (
    await apiOverTls("https://127.0.80.12:9001/metrics", {
      token: cluster.up.token,
      ca: await readFile(cluster.up.ca, "utf8"),
    })
  ).body as string;
const tlsOf = (node: string) => join(cluster.dir, node, "data", "tls");
const serialOn = async (node: string) =>
  certificateFacts(await readFile(join(tlsOf(node), "node.crt"), "utf8"));

test.before(async () => {
  cluster = await DevCluster.start("127.0.80", ["--nodes", "1"]);
  signer = spawn(
    HOLDFAST,
    ["cluster", "sign", "--ca-dir", join(cluster.dir, "ca"), ...cluster.storeArgs(), "--watch"].concat([
      "--interval",
      "1s",
      "--valid-for",
      `${VALID_S}s`,
    ]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  signer.stdout?.on("data", (d) => {
    signerLog += d;
  });
  signer.stderr?.on("data", (d) => {
    signerLog += d;
  });
  const made = await hf(
    ["cluster", "join-token", "create", "--node", "node2", ...cluster.storeArgs()].concat([
      "--ttl",
      "10m",
      "--output",
      "json",
    ]),
  );
  assert.is(made.code, 0, made.stderr);
  ({ id: tokenId, token } = JSON.parse(made.stdout) as { id: string; token: string });
  node2 = new JoiningNode(cluster, "node2", "127.0.80.12", token);
  cluster.adopt(node2);
});
test.after(async () => {
  await stopChild(signer, "SIGTERM");
  await cluster?.down();
});

test("a node joins with a CSR and a join token; the same token a second time is refused", async () => {
  await node2.start();
  assert.not.ok(node2.log.includes(token.split(".")[2] as string), "the agent never logs the token's secret");
  assert.match(signerLog, "signed node node2's certificate");
  const identity = await loadIdentity(tlsOf("node2"));
  assert.match(identity.caPem, "BEGIN CERTIFICATE");
  // What the node holds: its own key and certificate, and the CA's certificate, never the CA's key.
  for (const name of await readdir(tlsOf("node2"))) {
    const text = await readFile(join(tlsOf("node2"), name), "utf8");
    assert.not.ok(
      text.includes((await readFile(join(cluster.dir, "ca", "ca.key"), "utf8")).trim()),
      `${name}`,
    );
  }
  assert.equal((await readdir(tlsOf("node2"))).sort(), ["ca.crt", "node.crt", "node.key"]);
  assert.is((await stat(join(tlsOf("node2"), "node.key"))).mode & 0o777, 0o600);

  // The same token again (a node that kept a copy, or whoever found one), through the real signer.
  const store = await devEtcdStore(cluster.dir, cluster.up.etcd);
  try {
    const err = await requestCertificate({
      store,
      root: "/holdfast/dev",
      nodeId: "node2",
      addresses: ["127.0.80.12"],
      proof: withJoinToken(token),
      timeoutMs: 20_000,
    }).catch((e: Error) => e);
    assert.instance(err, Error);
    assert.match((err as Error).message, `join token ${tokenId} is unknown or already used`);
  } finally {
    await store.close();
  }
  // `cluster status` and /metrics show when node2's certificate expires.
  const facts = await serialOn("node2");
  const status = await cluster.json<{ nodes: Array<{ id: string; certNotAfter?: string }> }>([
    "cluster",
    "status",
  ]);
  const shown = status.nodes.find((n) => n.id === "node2")?.certNotAfter;
  assert.ok(shown, "cluster status names node2's certificate expiry");
  assert.ok(Math.abs(Date.parse(shown as string) - facts.notAfter.getTime()) < VALID_S * 1000);
  const metrics = await node2Metrics();
  const gauge = /^holdfast_node_certificate_expiry_seconds (\S+)$/m.exec(metrics);
  assert.ok(gauge, "the expiry gauge is on /metrics");
  assert.ok(Math.abs(Number(gauge?.[1]) * 1000 - facts.notAfter.getTime()) < VALID_S * 1000);
});

/** The serial node2's replication port presents to a new connection. */
async function servedSerial(client: NodeIdentity): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ ...clientTlsOptions(client, "node2"), host: "127.0.80.12", port: 9002 }, () => {
      resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

/** The serial of the certificate node2's API (https) serves a new connection, verified against the cluster CA. */
async function apiSerial(caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.80.12", port: 9001, ca: caPem }, () => {
      resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

test("a certificate near expiry is renewed without interrupting I/O, and the new one is in use", async () => {
  await cluster.json(["volume", "create", "name=renew,size=64M,repl=2"], "node2");
  await cluster.json(["volume", "attach", "renew"], "node2");
  const before = await serialOn("node2");
  const node1 = await loadIdentity(tlsOf("node1"));
  assert.is(await servedSerial(node1), before.serial);
  // Writes through node2's engine, to node1's replica over the connection opened with the first certificate, until
  // that certificate has expired: every one acknowledged, none failed.
  const lane = await NbdLane.open(cluster.nbdSocket("node2", "renew"), "renew");
  const written: Buffer[] = [];
  try {
    while (Date.now() < before.notAfter.getTime() + 3000) {
      const block = randomBytes(4096);
      assert.is(await lane.write(written.length * 4096, block), 0, `write ${written.length}`);
      written.push(block);
      if (written.length % 16 === 0) assert.is(await lane.flush(), 0);
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = await serialOn("node2");
    assert.is.not(after.serial, before.serial, "node2 saved a renewed certificate");
    assert.ok(after.notAfter > before.notAfter);
    assert.match(node2.log, '"certificate renewed"');
    // cluster status and /metrics follow the renewal.
    await waitFor("cluster status to show node2's renewed expiry", async () => {
      const status = await cluster.json<{ nodes: Array<{ id: string; certNotAfter?: string }> }>([
        "cluster",
        "status",
      ]);
      const shown = status.nodes.find((n) => n.id === "node2")?.certNotAfter;
      return shown && Date.parse(shown) > before.notAfter.getTime() ? shown : undefined;
    });
    const metrics = await node2Metrics();
    const gauge = Number(/^holdfast_node_certificate_expiry_seconds (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(gauge * 1000 > before.notAfter.getTime(), "the gauge shows the renewed certificate's expiry");
    // The swapped context still demands a client certificate from the CA.
    const anonymous = await new Promise<string>((resolve) => {
      const socket = connect({
        host: "127.0.80.12",
        port: 9002,
        ca: node1.caPem,
        checkServerIdentity: () => undefined,
      });
      socket.on("secureConnect", () => socket.write("x"));
      socket.on("error", (e) => resolve(e.message));
      socket.on("close", () => resolve("closed"));
    });
    assert.match(anonymous, /certificate required/);
    // A new connection gets the renewed certificate (the old one has expired: a peer would refuse it).
    assert.ok([after.serial, (await serialOn("node2")).serial].includes(await servedSerial(node1)));
    // The API serves it too: its certificate is the node's.
    assert.ok(
      [after.serial, (await serialOn("node2")).serial].includes(await apiSerial(node1.caPem)),
      "the API serves the renewed certificate",
    );
    for (const [i, block] of written.entries()) {
      assert.ok((await lane.read(i * 4096, 4096)).equals(block), `block ${i} reads back`);
    }
  } finally {
    lane.close();
  }
  const v = await cluster.json<VolumeJson>(["volume", "inspect", "renew"]);
  assert.equal(inSync(v), ["node1", "node2"], "no replica left the in-sync set across the renewal");
  const check = await hf(["volume", "check", "renew"], "node2");
  assert.is(check.code, 0, check.stdout + check.stderr);
  // node2 dials node1 anew with its renewed certificate: a new volume with a replica on node1 works.
  await cluster.json(["volume", "create", "name=renew2,size=16M,repl=2"], "node2");
  const attached = await cluster.json<VolumeJson>(["volume", "attach", "renew2"], "node2");
  assert.equal(inSync(attached), ["node1", "node2"]);
});

test("bad input to the enrollment commands is refused with exit 2, naming the field", async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ["cluster", "join-token", "create", "--node", "node3", "--store", "local"],
      /^holdfast: store: must be etcds:/,
    ],
    [
      ["cluster", "join-token", "create", "--node", "bad name", ...cluster.storeArgs()],
      /^holdfast: node: must be 1-63/,
    ],
    [
      ["cluster", "join-token", "create", "--node", "node3", "--ttl", "5x", ...cluster.storeArgs()],
      /^holdfast: ttl: must be/,
    ],
    [["cluster", "revoke", ...cluster.storeArgs()], /^holdfast: node: give --node ID or --serial HEX/],
    [
      ["cluster", "revoke", "--serial", "zz", ...cluster.storeArgs()],
      /^holdfast: serial: must be the certificate's serial/,
    ],
    [
      ["cluster", "sign", "--ca-dir", ".", "--valid-for", "0s", ...cluster.storeArgs()],
      /^holdfast: valid-for: must be/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await hf(args);
    assert.is(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test("a revoked node cannot connect: refused at the handshake, its open connections cut, its renewal refused", async () => {
  // Before: node2's certificate opens node1's replica of the volume.
  const volumeId = (await cluster.json<{ id: string }>(["volume", "inspect", "renew"])).id;
  const identity = await loadIdentity(tlsOf("node2"));
  const asNode2 = () =>
    RemoteReplica.connect({ identity, nodeId: "node1", host: "127.0.80.11", port: 9002, volumeId });
  (await asNode2()).close();
  assert.not.match(await cluster.agentLog("node1"), "its certificate is revoked");
  const revoked = await hf(["cluster", "revoke", "--node", "node2", ...cluster.storeArgs()]);
  assert.is(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, "revoked certificate");
  // The engine on node2 held connections to node1's replicas: node1 cuts them, so they leave the in-sync set.
  await waitFor("node1's replica of renew to leave the in-sync set", async () => {
    const v = await cluster.json<VolumeJson>(["volume", "inspect", "renew"]);
    return inSync(v).includes("node1") ? undefined : v;
  });
  // A new connection with node2's certificate (the one that opened node1's replica a moment ago) is refused by node1.
  const err = await asNode2().then(
    (r) => {
      r.close();
      return undefined;
    },
    (e: Error) => e,
  );
  assert.ok(err, "node1 refuses node2's revoked certificate");
  assert.match(err.message, /closed|reset|socket/i);
  // The refusal is logged as the connection is cut: the line may land a moment after the client saw the close.
  await waitFor("node1 to log the revoked certificate", async () =>
    (await cluster.agentLog("node1")).includes("its certificate is revoked") ? true : undefined,
  );
  await waitFor(
    "node2's renewal to be refused",
    async () => (node2.log.includes("is revoked: node node2 must join again") ? true : undefined),
    VALID_S * 1000,
  );
});

test.run();
