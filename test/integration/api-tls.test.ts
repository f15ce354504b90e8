import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, freePort, HOLDFAST, type TlsFixture, tlsFixture } from "../support/agent-process.js";

// The API over TLS (docs/decisions/0010-trust-boundary.md): an agent with a cluster certificate answers only TLS,
// and the CLI trusts it through HOLDFAST_CA or --ca, the cluster's ca.crt; one on a non-loopback address without a
// certificate does not start unless told to serve plain HTTP. Net 127.0.100.0/24.
const HOST = "127.0.100.1";

let dir = "";
let agent: AgentProcess;
let tls: TlsFixture;
const caFile = () => tls.caFile;
const otherCaFile = () => tls.otherCaFile;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-apitls-"));
  tls = await tlsFixture(dir, HOST, "apitls");
  // A 2 s request bound, so that the silent-connection test sees it act.
  agent = await AgentProcess.start(["--tls-dir", tls.tlsDir, "--api-request-timeout", "2"], {
    host: HOST,
    caFile: caFile(),
  });
});

test.after(async () => {
  await agent?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A plain HTTP request to the agent's port: what it gets, an answer or the error that ended it. */
function plainHttp(): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: HOST,
        port: agent.port,
        path: "/v1/cluster",
        headers: { authorization: `Bearer ${agent.token}` },
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode });
      },
    );
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

test("with a cluster certificate the API answers only TLS, and advertises https", async () => {
  const cluster = await agent.api("GET", "/v1/cluster");
  assert.is(cluster.status, 200);
  const nodes = (cluster.body as { nodes: Array<{ id: string; api: string }> }).nodes;
  assert.equal(
    nodes.map((n) => [n.id, n.api]),
    [["node1", agent.url]],
  );
  assert.match(agent.url, /^https:\/\/127\.0\.100\.1:\d+$/);
  const written = JSON.parse(await readFile(join(agent.dir, "data/run/agent.json"), "utf8"));
  assert.is(written.api, agent.url);

  const plain = await plainHttp();
  assert.is(plain.status, undefined, "a plain HTTP request got an HTTP answer");
  assert.ok(plain.error, "a plain HTTP request neither failed nor was answered");
});

/** Milliseconds until the agent closes `socket`, which sends nothing. */
function closedAfter(socket: Socket): Promise<number> {
  const started = Date.now();
  socket.on("error", () => undefined);
  socket.resume();
  return new Promise((resolve) => socket.once("close", () => resolve(Date.now() - started)));
}

test("silent connections are bounded over TLS too: no handshake, and no request after one", async () => {
  const [noHandshake, noRequest] = await Promise.all([
    closedAfter(connect(agent.port, HOST)),
    closedAfter(tlsConnect({ host: HOST, port: agent.port, ca: await readFile(caFile(), "utf8") })),
  ]);
  // Bounds of 2 s (the handshake) and at most 4 s (the first request); Node's handshake default is 120 s.
  assert.ok(noHandshake < 15_000, `a connection with no handshake was held ${noHandshake} ms`);
  assert.ok(noRequest < 15_000, `a TLS connection with no request was held ${noRequest} ms`);
});

test("the CLI trusts the agent by HOLDFAST_CA or --ca, and follows node URLs with the same CA", async () => {
  const status = await agent.cli("cluster", "status");
  assert.is(status.code, 0, status.stderr);
  const made = await agent.cli("volume", "create", "name=tls1,size=16M,repl=1");
  assert.is(made.code, 0, made.stderr);
  // --node looks the node's https URL up in the node list and asks it, trusting the same CA.
  const detached = await agent.cli("volume", "detach", "tls1", "--node", "node1");
  assert.is(detached.code, 0, detached.stderr);

  const byFlag = await agent.cli("--ca", caFile(), "volume", "list");
  assert.is(byFlag.code, 0, byFlag.stderr);
  const env = { ...agent.env, HOLDFAST_CA: "" };
  const flagged = await cli(env, "volume", "list", "--ca", caFile());
  assert.is(flagged.code, 0, flagged.stderr);
});

/** `holdfast ARGS` with `env`, never throwing. */
function cli(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(HOLDFAST, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("exit", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

test("an untrusted certificate is a clear error, exit 1, no stack trace", async () => {
  const system = await cli({ ...agent.env, HOLDFAST_CA: "" }, "volume", "list");
  assert.is(system.code, 1, system.stderr);
  assert.match(
    system.stderr,
    /a certificate no CA this CLI trusts has signed .*set HOLDFAST_CA \(or --ca\) to the cluster's ca\.crt/,
  );
  assert.not.match(system.stderr, /\n\s+at /);

  const wrong = await cli({ ...agent.env, HOLDFAST_CA: otherCaFile() }, "volume", "list");
  assert.is(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stderr, /certificate not signed by the CA in .*other-ca\.crt/);
  assert.not.match(wrong.stderr, /\n\s+at /);

  const missing = await cli({ ...agent.env, HOLDFAST_CA: join(dir, "missing.crt") }, "volume", "list");
  assert.is(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /^holdfast: ca: cannot read the CA file .*missing\.crt/);

  const plain = await cli(
    { ...agent.env, HOLDFAST_API: agent.url.replace("https:", "http:") },
    "volume",
    "list",
  );
  assert.is(plain.code, 1, plain.stderr);
  assert.match(plain.stderr, /use https:\/\//);
});

/** `holdfast agent` on `api` with no certificate; resolves with its exit code once it exits or is ready. */
async function agentWithoutCertificate(api: string, ...extra: string[]) {
  const data = await mkdtemp(join(tmpdir(), "hf-apitls-"));
  const child = spawn(
    HOLDFAST,
    [
      "agent",
      ...["--data-dir", join(data, "data"), "--mount-dir", join(data, "mnt"), "--api", api],
      ...["--plugin-socket", "none", "--csi-socket", "none", "--node-id", "plain"],
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  const ready = new Promise<{ code: number | null; log: string }>((resolve) => {
    const read = (d: Buffer) => {
      log += d;
      if (log.includes('"agent ready"')) resolve({ code: null, log });
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => resolve({ code, log }));
  });
  const result = await ready;
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  await rm(data, { recursive: true, force: true });
  return result;
}

test("without a certificate: plain HTTP on loopback; elsewhere only with --api-plain-http, warned", async () => {
  const refused = await agentWithoutCertificate(`0.0.0.0:${await freePort("0.0.0.0")}`);
  assert.is(refused.code, 2, refused.log);
  assert.match(
    refused.log,
    /holdfast: api: 0\.0\.0\.0:\d+ is not a loopback address and this node has no cluster certificate/,
  );
  assert.match(refused.log, /holdfast cluster issue --address HOST/);

  const lab = await agentWithoutCertificate(`0.0.0.0:${await freePort("0.0.0.0")}`, "--api-plain-http");
  assert.is(lab.code, null, lab.log);
  assert.match(lab.log, /plain HTTP on a non-loopback address \(apiPlainHttp\)/);
  assert.match(lab.log, /"api":"http:\/\/0\.0\.0\.0:\d+"/);

  const loopback = await agentWithoutCertificate(`127.0.100.2:${await freePort("127.0.100.2")}`);
  assert.is(loopback.code, null, loopback.log);
  assert.match(loopback.log, /"api":"http:\/\/127\.0\.100\.2:\d+"/);
  assert.not.match(loopback.log, /apiPlainHttp/);
});

test.run();
