import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  CertificateRenewer,
  createJoinToken,
  createNodeCsr,
  enrollmentKeys,
  enrollWithCa,
  IdentityDocumentVerifier,
  RevocationList,
  readJoinToken,
  renewalDue,
  requestCertificate,
  revoke,
  signNodeCsr,
  signPending,
  withCurrentIdentity,
  withJoinToken,
} from "../../agent/src/enrollment/index.js";
import { HoldfastError, SpecError } from "../../agent/src/errors.js";
import { LocalStore } from "../../agent/src/meta/index.js";
import {
  type ClusterCa,
  certificateFacts,
  createClusterCa,
  issueNodeIdentity,
  loadIdentity,
  type NodeIdentity,
  peerNodeId,
  ReplicaServer,
} from "../../agent/src/transport/index.js";

// Enrollment against the local store (the same MetaStore contract as etcd): a node asks with a CSR and a proof, the
// signer answers; orderings are driven step by step, the node's wait polling every 10 ms.
const ROOT = "/holdfast/test";
let dir = "";
let store: LocalStore;
let ca: ClusterCa;
const report = (err: unknown) => {
  throw err;
};

test.before(async () => {
  ca = await createClusterCa({ cluster: "test" });
});
test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-enroll-"));
  store = await LocalStore.open(join(dir, "meta.json"));
});
test.after.each(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts the node's request and resolves once it is in the store, with the request's outcome to come. */
async function enroll(node: string, proof: Parameters<typeof requestCertificate>[0]["proof"]) {
  const before = (await store.get(enrollmentKeys(ROOT).csr(node)))?.revision;
  const asked = requestCertificate({
    store,
    root: ROOT,
    nodeId: node,
    addresses: ["127.0.80.1"],
    proof,
    pollMs: 10,
  });
  const outcome = asked.then(
    (identity) => ({ identity, error: undefined }),
    (error: unknown) => ({ identity: undefined, error: error as Error }),
  );
  await until(async () => {
    const now = await store.get(enrollmentKeys(ROOT).csr(node));
    return now !== undefined && now.revision !== before;
  });
  // Wrapped: an async function returning the promise itself would wait for it.
  return { outcome };
}

async function until(condition: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const san = (identity: NodeIdentity) => new X509Certificate(identity.certPem).subjectAltName;

test("signNodeCsr issues for the node the CSR names, and refuses a CSR naming another node or another address", async () => {
  const { csrPem } = await createNodeCsr({ nodeId: "node1", addresses: ["127.0.80.1"] });
  const cert = new X509Certificate(
    await signNodeCsr(ca, csrPem, { nodeId: "node1", addresses: ["127.0.80.1"] }),
  );
  assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  assert.is(peerNodeId({ subjectaltname: cert.subjectAltName } as never), "node1");
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  assert.ok(days > 6.9 && days < 7.1, `7 days by default, got ${days}`);
  const err = await signNodeCsr(ca, csrPem, { nodeId: "node2", addresses: ["127.0.80.1"] }).catch((e) => e);
  assert.instance(err, SpecError);
  assert.is((err as SpecError).field, "csr");
  assert.match((err as Error).message, "must name node node2");
  const wider = await signNodeCsr(ca, csrPem, { nodeId: "node1", addresses: [] }).catch((e) => e);
  assert.instance(wider, SpecError, "a CSR asking for an address the signer did not grant is refused");
  const junk = await signNodeCsr(ca, "not a csr", { nodeId: "node1", addresses: [] }).catch((e) => e);
  assert.instance(junk, SpecError);
});

test("a node joins with a CSR and a join token; the same token a second time is refused", async () => {
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 3600 });
  assert.match(made.token, /^hfj1\.[0-9a-f]{16}\./);
  const first = (await enroll("node1", withJoinToken(made.token))).outcome;
  const [signed] = await signPending({ store, root: ROOT, ca, report });
  const { identity } = await first;
  assert.ok(identity, "the node got its certificate");
  assert.ok(signed && "signed" in signed && signed.proof === "join-token");
  assert.match(san(identity) ?? "", "URI:holdfast://node/node1");
  assert.ok(new X509Certificate(identity.certPem).checkPrivateKey(createPrivateKey(identity.keyPem)));
  assert.is(await store.get(`${ROOT}/join-tokens/${made.id}`), undefined, "the token is consumed");

  const again = (await enroll("node1", withJoinToken(made.token))).outcome;
  const [refused] = await signPending({ store, root: ROOT, ca, report });
  assert.ok(refused && "refused" in refused);
  const second = await again;
  assert.is(second.identity, undefined);
  assert.instance(second.error, HoldfastError);
  assert.is((second.error as HoldfastError).code, "enrollment.refused");
  assert.match(second.error?.message ?? "", `join token ${made.id} is unknown or already used`);
});

test("the store holds neither the token's secret nor anything that enrolls without it", async () => {
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 3600 });
  const secret = made.token.split(".")[2] as string;
  const pending = (await enroll("node1", withJoinToken(made.token))).outcome;
  for (const entry of await store.list("/"))
    assert.not.ok(entry.value.includes(secret), `${entry.key} holds the secret`);
  await signPending({ store, root: ROOT, ca, report });
  assert.ok((await pending).identity);
  // A forged proof: a token with the right id and another secret.
  const other = await createJoinToken(store, ROOT, { node: "node2", ttlSeconds: 3600 });
  const forged = `hfj1.${other.id}.${"A".repeat(43)}`;
  const attempt = (await enroll("node2", withJoinToken(forged))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  assert.match((await attempt).error?.message ?? "", "is not signed with join token");
  assert.ok(
    await store.get(`${ROOT}/join-tokens/${other.id}`),
    "a refused attempt does not consume the token",
  );
});

test("a token for another node, or an expired one, is refused", async () => {
  const forNode2 = await createJoinToken(store, ROOT, { node: "node2", ttlSeconds: 3600 });
  const wrong = (await enroll("node1", withJoinToken(forNode2.token))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  assert.match((await wrong).error?.message ?? "", `join token ${forNode2.id} is for node node2, not node1`);
  const old = await createJoinToken(store, ROOT, {
    node: "node1",
    ttlSeconds: 60,
    now: Date.now() - 120_000,
  });
  const late = (await enroll("node1", withJoinToken(old.token))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  assert.match((await late).error?.message ?? "", "expired");
});

test("a node renews with its current key; a revoked certificate cannot renew", async () => {
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 3600 });
  const joining = (await enroll("node1", withJoinToken(made.token))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  const current = (await joining).identity as NodeIdentity;
  const renewing = (await enroll("node1", withCurrentIdentity(current))).outcome;
  const [renewed] = await signPending({ store, root: ROOT, ca, report });
  const next = (await renewing).identity as NodeIdentity;
  assert.ok(renewed && "signed" in renewed && renewed.proof === "renewal");
  assert.is.not(certificateFacts(next.certPem).serial, certificateFacts(current.certPem).serial);
  assert.is.not(next.keyPem, current.keyPem, "a renewal makes a new key");

  const revoked = await revoke(store, ROOT, { node: "node1" });
  assert.equal(
    revoked.map((r) => r.serial).sort(),
    [certificateFacts(current.certPem).serial, certificateFacts(next.certPem).serial].sort(),
  );
  const again = (await enroll("node1", withCurrentIdentity(next))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  const outcome = await again;
  assert.is(outcome.identity, undefined);
  assert.match(
    outcome.error?.message ?? "",
    `certificate ${certificateFacts(next.certPem).serial} is revoked`,
  );
});

test("stand-in for AWS: an identity document signed by the key the signer trusts enrolls its instance once; one signed by another key is refused", async () => {
  const aws = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const impostor = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const verifiers = [
    new IdentityDocumentVerifier(aws.publicKey.export({ type: "spki", format: "pem" }).toString()),
  ];
  const document = JSON.stringify({ instanceId: "i-0abc", region: "eu-west-1", accountId: "123456789012" });
  const signedBy = (key: typeof aws.privateKey) => () => ({
    kind: "identity-document" as const,
    document,
    signature: sign("sha256", Buffer.from(document), key).toString("base64"),
  });
  const forged = (await enroll("i-0abc", signedBy(impostor.privateKey))).outcome;
  await signPending({ store, root: ROOT, ca, report, verifiers });
  assert.match((await forged).error?.message ?? "", "not signed by the key this signer trusts");
  const real = (await enroll("i-0abc", signedBy(aws.privateKey))).outcome;
  await signPending({ store, root: ROOT, ca, report, verifiers });
  assert.match(san((await real).identity as NodeIdentity) ?? "", "URI:holdfast://node/i-0abc");
  const replay = (await enroll("i-0abc", signedBy(aws.privateKey))).outcome;
  await signPending({ store, root: ROOT, ca, report, verifiers });
  assert.match((await replay).error?.message ?? "", "already enrolled with its identity document");
  const elsewhere = (await enroll("i-0def", signedBy(aws.privateKey))).outcome;
  await signPending({ store, root: ROOT, ca, report, verifiers });
  assert.match((await elsewhere).error?.message ?? "", "is instance i-0abc's, not node i-0def's");
  // A signer that takes only identity documents refuses join tokens.
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 3600 });
  const token = (await enroll("node1", withJoinToken(made.token))).outcome;
  await signPending({ store, root: ROOT, ca, report, verifiers: [...verifiers] });
  assert.match((await token).error?.message ?? "", "takes no join-token proofs");
});

test("enrollWithCa (for dev up) enrolls a node through the signer's path: token used, certificate recorded and saved", async () => {
  const tlsDir = join(dir, "tls");
  const identity = await enrollWithCa({
    store,
    root: ROOT,
    ca,
    nodeId: "node7",
    addresses: ["127.0.80.7"],
    tlsDir,
  });
  const saved = await loadIdentity(tlsDir);
  assert.is(saved.certPem, identity.certPem);
  assert.match(san(identity) ?? "", "URI:holdfast://node/node7");
  assert.equal(await store.list(`${ROOT}/join-tokens/`), [], "the token was used");
  const record = await store.get(enrollmentKeys(ROOT).cert("node7"));
  assert.match(record?.value ?? "", certificateFacts(identity.certPem).serial);
});

test("the joinToken setting is a token or a file holding one; anything else is a SpecError on joinToken", async () => {
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 60 });
  assert.is(await readJoinToken(made.token), made.token);
  const file = join(dir, "join-token");
  await writeFile(file, `${made.token}\n`, { mode: 0o600 });
  assert.is(await readJoinToken(file), made.token);
  for (const bad of [join(dir, "missing"), "hfj1.nothex.x"]) {
    const err = await readJoinToken(bad).catch((e: unknown) => e);
    assert.instance(err, SpecError, bad);
    assert.is((err as SpecError).field, "joinToken");
  }
  await writeFile(file, "not a token\n");
  assert.match(String(await readJoinToken(file).catch((e: unknown) => e)), "joinToken");
  const ttl = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 0 }).catch((e: unknown) => e);
  assert.is((ttl as SpecError).field, "ttl");
  const node = await createJoinToken(store, ROOT, { node: "no such/node", ttlSeconds: 60 }).catch(
    (e: unknown) => e,
  );
  assert.is((node as SpecError).field, "node");
});

test("the revocation list: read at each handshake, refreshed for open connections, and the list as last read when the store hangs", async () => {
  const made = await createJoinToken(store, ROOT, { node: "node1", ttlSeconds: 60 });
  const joining = (await enroll("node1", withJoinToken(made.token))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  const serial = certificateFacts(((await joining).identity as NodeIdentity).certPem).serial;
  let hang = false;
  const flaky = {
    ...store,
    get: (key: string) => (hang ? new Promise<never>(() => {}) : store.get(key)),
    list: (prefix: string) => store.list(prefix),
  } as unknown as LocalStore;
  const list = new RevocationList({
    store: flaky,
    root: ROOT,
    report,
    logger: pino({ level: "silent" }),
    handshakeReadMs: 50,
  });
  const seen: string[][] = [];
  list.onRevoked(({ serials }) => seen.push([...serials]));
  await list.start();
  assert.not.ok(await list.isRevoked(serial));
  await revoke(store, ROOT, { node: "node1" });
  assert.ok(await list.isRevoked(serial), "read from the store at the handshake, before any refresh");
  await list.refresh();
  assert.equal(seen, [[serial]], "a refresh tells of the newly revoked serial once");
  await list.refresh();
  assert.is(seen.length, 1);
  hang = true;
  const started = Date.now();
  assert.ok(await list.isRevoked(serial), "a hung store: the list as last read");
  assert.not.ok(await list.isRevoked("abcdef"));
  assert.ok(Date.now() - started < 1000, "bounded by handshakeReadMs");
  assert.ok(list.has(serial));
  list.stop();
});

test("revoking a node cuts every connection of it, also one opened with a certificate the signer no longer lists", async () => {
  // node2's first certificate, as after a renewal once it expired: the signer's record lists only the current one.
  const first = await issueNodeIdentity(ca, { nodeId: "node2", addresses: ["127.0.0.1"] });
  const made = await createJoinToken(store, ROOT, { node: "node2", ttlSeconds: 60 });
  const joining = (await enroll("node2", withJoinToken(made.token))).outcome;
  await signPending({ store, root: ROOT, ca, report });
  assert.ok((await joining).identity);
  const revocations = new RevocationList({ store, root: ROOT, report, logger: pino({ level: "silent" }) });
  await revocations.start();
  const refuse = () => Promise.reject(new Error("no replica operation in this test"));
  const server = new ReplicaServer({
    identity: await issueNodeIdentity(ca, { nodeId: "node1", addresses: ["127.0.0.1"] }),
    host: "127.0.0.1",
    port: 0,
    logger: pino({ level: "silent" }),
    openReplica: refuse,
    closeReplica: () => undefined,
    createReplica: refuse,
    destroyReplica: refuse,
    policy: { admit: refuse, create: refuse, destroy: refuse, write: refuse } as never,
    revocations,
  });
  const port = await server.listen();
  try {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port,
      ca: first.caPem,
      cert: first.certPem,
      key: first.keyPem,
      checkServerIdentity: () => undefined,
    });
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    const revoked = await revoke(store, ROOT, { node: "node2" });
    assert.not.ok(
      revoked.some((r) => r.serial === certificateFacts(first.certPem).serial),
      "the first certificate is not among the serials revoked",
    );
    await revocations.refresh();
    const outcome = await Promise.race([
      closed.then(() => "cut"),
      new Promise((r) => setTimeout(() => r("still open"), 10_000)),
    ]);
    assert.is(outcome, "cut");
    socket.destroy();
  } finally {
    revocations.stop();
    await server.close();
  }
});

test("the renewer replaces the identity in place and saves it when a third of its life is left; stop gives up a waiting renewal", async () => {
  const identity = await issueNodeIdentity(ca, { nodeId: "node1", addresses: [], validDays: 6 / 86_400 });
  const first = certificateFacts(identity.certPem);
  const tlsDir = join(dir, "tls");
  const renewed: string[] = [];
  const logs: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
  const renewer = new CertificateRenewer({
    store,
    root: ROOT,
    nodeId: "node1",
    addresses: [],
    tlsDir,
    identity,
    onRenewed: (i) => renewed.push(certificateFacts(i.certPem).serial),
    logger,
  });
  renewer.start();
  // The signer, as a loop would run it, until the renewal lands.
  await until(async () => {
    await signPending({ store, root: ROOT, ca, report, validDays: 600 / 86_400 });
    return renewed.length > 0;
  }, 15_000);
  assert.ok(Date.now() > first.notAfter.getTime() - 2500, "not renewed before a third of its life was left");
  assert.is.not(renewed[0], first.serial);
  assert.is(certificateFacts(identity.certPem).serial, renewed[0], "the identity object itself now holds it");
  assert.is((await loadIdentity(tlsDir)).certPem, identity.certPem, "and it is saved");
  renewer.stop();

  // Due at once, no signer: stop() returns without waiting out the request, and nothing is logged after it.
  const due = await issueNodeIdentity(ca, { nodeId: "node2", addresses: [], validDays: 3 / 86_400 });
  const waiting = new CertificateRenewer({
    store,
    root: ROOT,
    nodeId: "node2",
    addresses: [],
    tlsDir: join(dir, "tls2"),
    identity: due,
    onRenewed: () => renewed.push("node2"),
    logger,
  });
  waiting.start();
  await until(async () => (await store.get(enrollmentKeys(ROOT).csr("node2"))) !== undefined, 5000);
  const before = logs.length;
  waiting.stop();
  await new Promise((r) => setTimeout(r, 1200));
  assert.is(logs.length, before, logs.slice(before).join(""));
  assert.equal(
    renewed.filter((r) => r === "node2"),
    [],
  );
});

test("renewal is due when less than a third of a certificate's life is left", () => {
  const notBefore = new Date(0);
  const notAfter = new Date(3_000_000);
  assert.not.ok(renewalDue({ notBefore, notAfter }, 1_999_000));
  assert.ok(renewalDue({ notBefore, notAfter }, 2_001_000));
});

test.run();
