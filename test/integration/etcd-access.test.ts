import { rejects } from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  EtcdStore,
  type EtcdTlsFiles,
  readEtcdTls,
  StoreForbiddenError,
} from "../../agent/src/meta/index.js";
import { createClusterCa, issueNodeIdentity } from "../../agent/src/transport/index.js";
import { AgentProcess, HOLDFAST } from "../support/agent-process.js";
import { type ClusterEtcd, EtcdProcess } from "../support/etcd-process.js";

// etcd's trust boundary, on a real etcd run as `holdfast dev up` runs it (mutual TLS with etcd's own CA, auth on,
// a role per cluster): who has no client certificate from etcd's CA reaches nothing, and a cluster's certificate
// reaches its own prefix and nothing else, so two clusters can share an etcd without reaching each other's keys.
let etcd: EtcdProcess;
let a: ClusterEtcd;
let b: ClusterEtcd;
let agentA: AgentProcess;
let agentB: AgentProcess;
let scratch = "";

test.before(async () => {
  etcd = await EtcdProcess.start();
  a = await etcd.clusterAccess("a");
  b = await etcd.clusterAccess("b");
  agentA = await AgentProcess.start(a.agentArgs);
  agentB = await AgentProcess.start(b.agentArgs);
  scratch = await mkdtemp(join(tmpdir(), "hf-etcd-access-"));
});
test.after(async () => {
  await agentA?.destroy();
  await agentB?.destroy();
  await etcd?.destroy();
  await rm(scratch, { recursive: true, force: true });
});

/** An etcd3 client with `credentials` (some may be missing), closed after `fn`. */
async function withClient<T>(
  credentials: { rootCertificate: string; certChain?: string; privateKey?: string },
  fn: (client: Etcd3) => Promise<T>,
): Promise<T> {
  const client = new Etcd3({
    hosts: [etcd.endpoint],
    dialTimeout: 3000,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + 3000) }),
    credentials: {
      rootCertificate: Buffer.from(credentials.rootCertificate),
      ...(credentials.certChain ? { certChain: Buffer.from(credentials.certChain) } : {}),
      ...(credentials.privateKey ? { privateKey: Buffer.from(credentials.privateKey) } : {}),
    },
  });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

const clusterRecord = (cluster: string) => `/holdfast/${cluster}/cluster`;

test("the agents work, each in its own prefix of the one etcd", async () => {
  await agentA.json("volume", "create", "name=same-name,size=64M");
  await agentB.json("volume", "create", "name=same-name,size=64M");
  const names = await etcd.keys("/holdfast/");
  assert.ok(names.includes("/holdfast/a/names/same-name"), names.join("\n"));
  assert.ok(names.includes("/holdfast/b/names/same-name"), names.join("\n"));
});

test("without a client certificate etcd answers nothing, not even a read", async () => {
  const root = await etcd.root();
  await rejects(() => withClient({ rootCertificate: root.caPem }, (c) => c.get(clusterRecord("a")).string()));
});

test("a client certificate from another CA is refused, even one that names root", async () => {
  const foreign = await createClusterCa({ cluster: "intruder" });
  const fake = await issueNodeIdentity(foreign, { nodeId: "root", addresses: [], validDays: 1 });
  const root = await etcd.root();
  await rejects(() =>
    withClient({ rootCertificate: root.caPem, certChain: fake.certPem, privateKey: fake.keyPem }, (c) =>
      c.get(clusterRecord("a")).string(),
    ),
  );
});

test("cluster b's certificate cannot read, list or write cluster a's keys", async () => {
  const before = await withClient(
    { rootCertificate: a.tls.caPem, certChain: a.tls.certPem, privateKey: a.tls.keyPem },
    (c) => c.get(clusterRecord("a")).string(),
  );
  assert.ok(before, "cluster a's own certificate reads its record");
  const store = await EtcdStore.open({ endpoints: [etcd.endpoint], prefix: "/holdfast/b/", tls: b.tls });
  try {
    const forbidden = (err: unknown) => err instanceof StoreForbiddenError && err.code === "meta.forbidden";
    await rejects(() => store.get(clusterRecord("a")), forbidden);
    await rejects(() => store.list("/holdfast/a/"), forbidden);
    await rejects(() => store.list("/holdfast/"), forbidden);
    await rejects(() => store.commit([], [{ put: "/holdfast/a/volumes/planted", value: "{}" }]), forbidden);
    await rejects(() => store.commit([], [{ delete: clusterRecord("a") }]), forbidden);
  } finally {
    await store.close();
  }
  const keys = await etcd.keys("/holdfast/a/");
  assert.not.ok(keys.includes("/holdfast/a/volumes/planted"));
  assert.ok(keys.includes(clusterRecord("a")), "cluster a's record is still there");
});

test("an agent of cluster a started with cluster b's certificate stops at once, naming the prefix it was refused", async () => {
  const dir = join(scratch, "wrong-cert");
  const args = b.agentArgs.map((arg) => (arg === "b" ? "a" : arg));
  assert.ok(args.includes("a"), "the cluster flag is swapped");
  const run = spawnSync(
    HOLDFAST,
    ["agent", "--data-dir", dir, "--api", "127.0.0.1:0", "--plugin-socket", "none", "--csi-socket", "none"]
      .concat(["--mount-dir", join(dir, "mnt")])
      .concat(args),
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.is.not(run.status, 0, run.stdout);
  assert.match(run.stderr + run.stdout, /refused access to \/holdfast\/a\//);
});

test("an agent given plain etcd:// is refused, naming the setting, unless it says it is a lab", async () => {
  const config = join(scratch, "plain.json");
  await writeFile(config, JSON.stringify({ dataDir: join(scratch, "plain"), store: "etcd://127.0.0.1:1" }));
  const run = spawnSync(HOLDFAST, ["agent", "--config", config], { encoding: "utf8", timeout: 60_000 });
  assert.is(run.status, 2, run.stderr);
  assert.match(run.stderr, /store: etcd:\/\/ is plain HTTP/);
  assert.match(run.stderr, /--etcd-plain-http/);
});

test("the operator's commands: etcd client and etcd grant give a new cluster its prefix; bad input exits 2", async () => {
  const out = join(scratch, "client-c");
  const hf = (...args: string[]) => spawnSync(HOLDFAST, args, { encoding: "utf8", timeout: 60_000 });
  const issued = hf("etcd", "client", "--dir", etcd.pki, "--cluster", "c", "--out", out, "--output", "json");
  assert.is(issued.status, 0, issued.stderr);
  const files = JSON.parse(issued.stdout) as EtcdTlsFiles;
  const granted = hf("etcd", "grant", "--dir", etcd.pki, "--endpoint", etcd.endpoint, "--cluster", "c");
  assert.is(granted.status, 0, granted.stderr);
  assert.match(granted.stdout, /holdfast-c .*readwrite on \/holdfast\/c\/ only/);
  const store = await EtcdStore.open({
    endpoints: [etcd.endpoint],
    prefix: "/holdfast/c/",
    tls: await readEtcdTls(files),
  });
  try {
    assert.ok(await store.commit([], [{ put: "/holdfast/c/probe", value: "1" }]));
    await rejects(() => store.get(clusterRecord("a")), StoreForbiddenError);
  } finally {
    await store.close();
  }
  const plain = hf(
    "etcd",
    "grant",
    "--dir",
    etcd.pki,
    "--endpoint",
    "http://127.0.0.1:2379",
    "--cluster",
    "c",
  );
  assert.is(plain.status, 2, plain.stderr);
  assert.match(plain.stderr, /endpoint: "http:\/\/127\.0\.0\.1:2379" is not https:\/\/HOST:PORT/);
  const badName = hf("etcd", "client", "--dir", etcd.pki, "--cluster", "../x", "--out", out);
  assert.is(badName.status, 2, badName.stderr);
  assert.match(badName.stderr, /cluster: must be 1-63/);
});

test("each cluster's client certificate names its own etcd user", async () => {
  assert.match(new X509Certificate(a.tls.certPem).subject, /CN=holdfast-a/);
  assert.match(new X509Certificate(b.tls.certPem).subject, /CN=holdfast-b/);
});

test.run();
