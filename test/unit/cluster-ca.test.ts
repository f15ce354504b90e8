import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HoldfastError, SpecError } from "../../agent/src/errors.js";
import {
  type ClusterCa,
  certificateFacts,
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  loadCa,
  loadIdentity,
  type NodeIdentity,
  peerNodeId,
  saveCa,
  saveIdentity,
  serverTlsOptions,
} from "../../agent/src/transport/index.js";

const run = promisify(execFile);

interface Outcome {
  /** The node id the server saw on an accepted connection, if it accepted one. */
  serverPeer?: string;
  /** What the server received. */
  serverGot?: string;
  /** The node id the client saw on the server's certificate. */
  clientPeer?: string;
  /** What the client received back. */
  reply: string;
  clientError?: string;
  /** Why the server refused the handshake, if it did. */
  serverError?: string;
}

/** Starts a server with `server`, connects once with `client`, sends "ping"; the server answers "pong:<data>". */
async function exchange(server: NodeIdentity, client: tls.ConnectionOptions): Promise<Outcome> {
  const outcome: Outcome = { reply: "" };
  const srv = tls.createServer(serverTlsOptions(server), (socket) => {
    outcome.serverPeer = peerNodeId(socket.getPeerCertificate());
    socket.on("data", (data: Buffer) => {
      outcome.serverGot = (outcome.serverGot ?? "") + data.toString();
      socket.end(`pong:${data.toString()}`);
    });
    socket.on("error", () => {});
  });
  srv.on("tlsClientError", (err) => {
    outcome.serverError ??= err.message;
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as AddressInfo;
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        outcome.clientError ??= "timeout";
        socket.destroy();
      }, 3000);
      const socket = tls.connect({ ...client, host: "127.0.0.1", port }, () => {
        outcome.clientPeer = peerNodeId(socket.getPeerCertificate());
        socket.write("ping");
      });
      socket.on("data", (data: Buffer) => {
        outcome.reply += data.toString();
      });
      socket.on("error", (err) => {
        outcome.clientError ??= err.message;
      });
      socket.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
  return outcome;
}

let ca: ClusterCa;
let nodeA: NodeIdentity;
let nodeB: NodeIdentity;

test.before(async () => {
  ca = await createClusterCa({ cluster: "prod" });
  nodeA = await issueNodeIdentity(ca, { nodeId: "a", addresses: ["127.0.0.1", "a.holdfast.internal"] });
  nodeB = await issueNodeIdentity(ca, { nodeId: "b", addresses: ["127.0.0.2", "b.holdfast.internal"] });
});

test("two nodes of the cluster connect, exchange bytes and see each other's node id", async () => {
  const out = await exchange(nodeA, clientTlsOptions(nodeB, "a"));
  assert.is(out.clientError, undefined);
  assert.is(out.serverError, undefined);
  assert.is(out.serverPeer, "b");
  assert.is(out.clientPeer, "a");
  assert.is(out.serverGot, "ping");
  assert.is(out.reply, "pong:ping");
});

test("a client without a certificate is refused", async () => {
  const out = await exchange(nodeA, { ca: nodeA.caPem, checkServerIdentity: () => undefined });
  assert.is(out.serverPeer, undefined);
  assert.is(out.serverGot, undefined);
  assert.is(out.reply, "");
  assert.ok(out.serverError, "the server refuses the handshake");
});

test("a client with a certificate from another cluster's CA is refused", async () => {
  const otherCa = await createClusterCa({ cluster: "staging" });
  const intruder = await issueNodeIdentity(otherCa, { nodeId: "b", addresses: ["127.0.0.1"] });
  // The intruder trusts our CA so that only the server's check is at work.
  const out = await exchange(nodeA, { ...clientTlsOptions(intruder, "a"), ca: ca.certPem });
  assert.is(out.serverPeer, undefined);
  assert.is(out.serverGot, undefined);
  assert.is(out.reply, "");
  assert.ok(out.serverError, "the server refuses the handshake");
  // And a node of the other cluster does not trust our server either.
  const back = await exchange(nodeA, clientTlsOptions(intruder, "a"));
  assert.is(back.serverGot, undefined);
  assert.ok(back.clientError);
});

test("a client expecting node b that reaches node a fails verification", async () => {
  const out = await exchange(nodeA, clientTlsOptions(nodeB, "b"));
  assert.is(out.serverGot, undefined);
  assert.is(out.reply, "");
  assert.match(out.clientError ?? "", /names node "a", expected node "b"/);
});

test("a client refuses a server whose serial is revoked, and connects while it is not", async () => {
  const serialA = certificateFacts(nodeA.certPem).serial;
  const revoked = new Set([serialA]);
  const out = await exchange(
    nodeA,
    clientTlsOptions(nodeB, "a", (serial) => revoked.has(serial)),
  );
  assert.is(out.serverGot, undefined);
  assert.match(out.clientError ?? "", `node "a" presents certificate ${serialA}, which is revoked`);
  revoked.clear();
  const ok = await exchange(
    nodeA,
    clientTlsOptions(nodeB, "a", (serial) => revoked.has(serial)),
  );
  assert.is(ok.reply, "pong:ping");
});

test("node certificates last 7 days unless told otherwise, and a short one is backdated by a tenth of its life", async () => {
  const week = certificateFacts(nodeA.certPem);
  const days = (week.notAfter.getTime() - week.notBefore.getTime()) / 86_400_000;
  assert.ok(days > 7 && days < 7.01, `7 days and the 5-minute backdating, got ${days}`);
  const short = certificateFacts(
    (await issueNodeIdentity(ca, { nodeId: "b", addresses: [], validDays: 60 / 86_400 })).certPem,
  );
  const life = (short.notAfter.getTime() - short.notBefore.getTime()) / 1000;
  // Whole seconds in X.509 times: 60 s plus 6 s backdating, give or take one.
  assert.ok(life >= 65 && life <= 67, `life ${life} s`);
});

test("an expired certificate is refused, on either side", async () => {
  const day = 86_400_000;
  const expired = await issueNodeIdentity(ca, {
    nodeId: "b",
    addresses: ["127.0.0.1"],
    notBefore: new Date(Date.now() - 10 * day),
    notAfter: new Date(Date.now() - day),
  });
  const out = await exchange(nodeA, clientTlsOptions(expired, "a"));
  assert.is(out.serverGot, undefined);
  assert.is(out.reply, "");
  assert.ok(out.serverError, "the server refuses the handshake");
  const back = await exchange(expired, clientTlsOptions(nodeA, "b"));
  assert.is(back.serverGot, undefined);
  assert.match(back.clientError ?? "", /expired/i);
});

test("bad input is a SpecError naming the field", async () => {
  for (const [options, field] of [
    [{ nodeId: "no/slash", addresses: [] }, "nodeId"],
    [{ nodeId: "a", addresses: ["not an address"] }, "addresses[0]"],
    [{ nodeId: "a", addresses: [], validDays: 0 }, "validDays"],
  ] as const) {
    try {
      await issueNodeIdentity(ca, { ...options, addresses: [...options.addresses] });
      assert.unreachable("should have thrown");
    } catch (err) {
      assert.instance(err, SpecError);
      assert.is((err as SpecError).field, field);
    }
  }
  const other = await createClusterCa({ cluster: "x" });
  try {
    await issueNodeIdentity({ certPem: ca.certPem, keyPem: other.keyPem }, { nodeId: "a", addresses: [] });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, SpecError);
    assert.match((err as Error).message, /not the private key/);
  }
});

test("save/load round-trips with 0600 keys; missing or corrupt files are named", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-ca-"));
  try {
    const caDir = join(dir, "ca");
    const nodeDir = join(dir, "node");
    await saveCa(caDir, ca);
    await saveIdentity(nodeDir, nodeA);
    assert.equal(await loadCa(caDir), ca);
    assert.equal(await loadIdentity(nodeDir), nodeA);
    assert.is((await stat(join(caDir, "ca.key"))).mode & 0o777, 0o600);
    assert.is((await stat(join(nodeDir, "node.key"))).mode & 0o777, 0o600);
    // Saving again over existing files keeps the mode.
    await saveIdentity(nodeDir, nodeA);
    assert.is((await stat(join(nodeDir, "node.key"))).mode & 0o777, 0o600);

    const failsNaming = async (load: () => Promise<unknown>, file: string, why: RegExp) => {
      try {
        await load();
        assert.unreachable("should have thrown");
      } catch (err) {
        assert.instance(err, HoldfastError);
        assert.ok((err as Error).message.includes(file), (err as Error).message);
        assert.match((err as Error).message, why);
      }
    };
    await failsNaming(
      () => loadIdentity(join(dir, "nowhere")),
      join(dir, "nowhere", "ca.crt"),
      /does not exist/,
    );
    await writeFile(
      join(nodeDir, "node.crt"),
      "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    );
    await failsNaming(() => loadIdentity(nodeDir), join(nodeDir, "node.crt"), /not a PEM X.509 certificate/);
    await writeFile(join(nodeDir, "node.crt"), nodeA.certPem);
    await writeFile(join(nodeDir, "node.key"), "not a key");
    await failsNaming(() => loadIdentity(nodeDir), join(nodeDir, "node.key"), /not a PEM private key/);
    await writeFile(join(nodeDir, "node.key"), nodeB.keyPem);
    await failsNaming(() => loadIdentity(nodeDir), join(nodeDir, "node.key"), /not the private key/);
    await rm(join(caDir, "ca.key"));
    await failsNaming(() => loadCa(caDir), join(caDir, "ca.key"), /does not exist/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("openssl sees the extensions of the CA and node certificates", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-ca-openssl-"));
  try {
    await saveIdentity(dir, nodeA);
    const { stdout: node } = await run("openssl", ["x509", "-noout", "-text", "-in", join(dir, "node.crt")]);
    assert.match(node, /IP Address:127\.0\.0\.1/);
    assert.match(node, /DNS:a\.holdfast\.internal/);
    assert.match(node, /URI:holdfast:\/\/node\/a/);
    assert.match(node, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(node, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(node, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
    assert.match(node, /Subject Key Identifier/);
    assert.match(node, /Authority Key Identifier/);
    assert.match(node, /Subject: CN ?= ?a/);
    assert.match(node, /ecdsa-with-SHA256/);
    const { stdout: caText } = await run("openssl", ["x509", "-noout", "-text", "-in", join(dir, "ca.crt")]);
    assert.match(caText, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(caText, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    // And openssl verifies the chain on its own, for both TLS purposes.
    for (const purpose of ["sslserver", "sslclient"]) {
      const { stdout } = await run("openssl", [
        "verify",
        "-purpose",
        purpose,
        "-CAfile",
        join(dir, "ca.crt"),
        join(dir, "node.crt"),
      ]);
      assert.match(stdout, /OK/);
    }
    const key = await readFile(join(dir, "node.key"), "utf8");
    assert.ok(key.startsWith("-----BEGIN PRIVATE KEY-----"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
