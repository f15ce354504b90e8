import { spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from "../../providers/src/plugin/serve.js";
import { serviceDefinition } from "../../providers/src/plugin/services.js";
import { selfSignedCertificate } from "../../providers/src/plugin/tls-certificate.js";
import { AgentProcess, HOLDFAST, sh, stopChild } from "../support/agent-process.js";
import { buildProvider, PROVIDER_BIN, providerBlock, TerraformDir } from "./terraform-support.js";

// How the built provider starts: the start line that keeps NODE_EXTRA_CA_CERTS away from Node (and the API client
// that trusts those certificates all the same), the code cache of its handshake half, and the AutoMTLS socket that
// lets in only Terraform's client certificate. The start-up time itself is measured in bench/provider-startup.ts.

const PROVIDER = join(PROVIDER_BIN, "terraform-provider-holdfast");

let agent: AgentProcess;
let dir = "";
/** An https front for the agent (whose API is plain http), with a certificate from a CA of the test's own. */
let front: Server;
let frontUrl = "";
const ca = () => join(dir, "ca/ca.crt");

test.before(async () => {
  await buildProvider();
  agent = await AgentProcess.start();
  dir = await mkdtemp(join(tmpdir(), "hf-tf-startup-"));
  await sh(HOLDFAST, ["cluster", "init", "--dir", join(dir, "ca")]);
  await sh(HOLDFAST, [
    "cluster",
    "issue",
    "--ca-dir",
    join(dir, "ca"),
    "--node",
    "api",
    "--address",
    "127.0.0.1",
    "--out",
    join(dir, "api"),
  ]);
  const target = new URL(agent.url);
  front = createServer(
    { key: readFileSync(join(dir, "api/node.key")), cert: readFileSync(join(dir, "api/node.crt")) },
    (req, res) => {
      const upstream = request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(upstream);
    },
  );
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  const address = front.address();
  frontUrl = `https://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});

test.after(async () => {
  front?.close();
  await agent?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `terraform plan` of the cluster data source through the https front, with `env` and provider settings. */
async function planThroughFront(env: NodeJS.ProcessEnv, settings = "") {
  const tf = await TerraformDir.create({ HOLDFAST_API: frontUrl, HOLDFAST_TOKEN: agent.token, ...env });
  try {
    await tf.write({ "main.tf": `${providerBlock(settings)}data "holdfast_cluster" "c" {}\n` });
    return await tf.plan();
  } finally {
    await tf.remove();
  }
}

test("an https agent trusted only through NODE_EXTRA_CA_CERTS: the API client trusts it, as Node would", async () => {
  const trusted = await planThroughFront({ NODE_EXTRA_CA_CERTS: ca() });
  assert.is(trusted.code, 0, trusted.stderr);

  const untrusted = await planThroughFront({ NODE_EXTRA_CA_CERTS: undefined });
  assert.is(untrusted.code, 1, untrusted.stdout);
  assert.match(untrusted.stderr, /Error: Untrusted agent certificate/);

  // Node's rule for an explicit CA: ca_file replaces the roots and NODE_EXTRA_CA_CERTS alike.
  const other = join(dir, "api/node.crt");
  const replaced = await planThroughFront({ NODE_EXTRA_CA_CERTS: ca() }, `  ca_file = "${other}"\n`);
  assert.is(replaced.code, 1, replaced.stdout);
  assert.match(replaced.stderr, /Error: Untrusted agent certificate/);
  const byCaFile = await planThroughFront({ NODE_EXTRA_CA_CERTS: undefined }, `  ca_file = "${ca()}"\n`);
  assert.is(byCaFile.code, 0, byCaFile.stderr);

  // A file that cannot be read is ignored with a warning, as Node ignores it: plain http still works.
  const tf = await TerraformDir.create({
    HOLDFAST_API: agent.url,
    HOLDFAST_TOKEN: agent.token,
    NODE_EXTRA_CA_CERTS: join(dir, "missing.pem"),
  });
  await tf.write({ "main.tf": `${providerBlock()}data "holdfast_cluster" "c" {}\n` });
  const plain = await tf.plan();
  await tf.remove();
  assert.is(plain.code, 0, plain.stderr);
});

/**
 * Starts the provider as Terraform would (`command` the file itself, or `node FILE`) and stops it once it has
 * written its handshake and saved its code cache; resolves with its stderr (hclog JSON lines, and Node's warnings).
 */
function startProvider(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE, TF_DISABLE_PLUGIN_TLS: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const stopWhenStarted = () => {
      if (stdout.includes("\n") && stderr.includes('"code cache"')) child.kill("SIGTERM");
    };
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      stopWhenStarted();
    });
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      stopWhenStarted();
    });
    child.on("exit", () =>
      /^1\|6\|unix\|/.test(stdout) ? resolve(stderr) : reject(new Error(`no handshake: ${stderr}`)),
    );
  });
}

/** The code cache's status at one start of the provider with `runtime` as XDG_RUNTIME_DIR. */
async function codeCacheStatus(runtime: string): Promise<string> {
  const stderr = await startProvider(PROVIDER, [], { XDG_RUNTIME_DIR: runtime });
  const line = stderr.split("\n").find((l) => l.includes('"code cache"'));
  return JSON.parse(line ?? "{}").status;
}

test("the start line keeps NODE_EXTRA_CA_CERTS from Node; `node FILE` starts too, and Node reads it there", async () => {
  // Node warns at start-up about an extra CA file it cannot load: a sign it parsed the variable.
  const missing = { NODE_EXTRA_CA_CERTS: join(dir, "missing.pem") };
  const executed = await startProvider(PROVIDER, [], missing);
  assert.not.match(executed, /Ignoring extra certs/);
  const withNode = await startProvider(process.execPath, [PROVIDER], missing);
  assert.match(withNode, /Ignoring extra certs/);
});

test("the code cache: written by the first start, used by the next; a corrupt or foreign one is replaced", async () => {
  const runtime = await mkdtemp(join(tmpdir(), "hf-tf-runtime-"));
  const cacheDir = join(runtime, "holdfast-provider");
  const cacheFile = async () => {
    const names = (await readdir(cacheDir)).filter((name) => name.startsWith("code-"));
    assert.is(names.length, 1, `one code cache file: ${names.join(" ")}`);
    return join(cacheDir, names[0] ?? "");
  };
  try {
    assert.is(await codeCacheStatus(runtime), "miss");
    const file = await cacheFile();
    assert.match(file, new RegExp(`-node${process.version}-${process.arch}\\.bin$`));
    assert.is((await stat(file)).mode & 0o777, 0o600);
    assert.is(await codeCacheStatus(runtime), "hit");

    // A flipped byte fails the file's own digest: V8 never sees it.
    const good = await readFile(file);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100] = (flipped[flipped.length - 100] ?? 0) ^ 0xff;
    await writeFile(file, flipped);
    assert.is(await codeCacheStatus(runtime), "corrupt");
    assert.is(await codeCacheStatus(runtime), "hit", "rewritten");
    await writeFile(file, good.subarray(0, 1000));
    assert.is(await codeCacheStatus(runtime), "corrupt", "cut short");

    // A well-formed file V8 will not take (another V8, other flags): its digest is right, its contents are not.
    const foreign = Buffer.alloc(4096, 7);
    await writeFile(file, Buffer.concat([createHash("sha256").update(foreign).digest(), foreign]));
    assert.is(await codeCacheStatus(runtime), "rejected");
    assert.is(await codeCacheStatus(runtime), "hit", "rewritten");

    // Five providers starting together, as Terraform may start them: all start, and one good file is left.
    await rm(file);
    const together = await Promise.all(Array.from({ length: 5 }, () => codeCacheStatus(runtime)));
    assert.ok(
      together.every((status) => status === "miss" || status === "hit"),
      together.join(" "),
    );
    await cacheFile();
    assert.equal(
      (await readdir(cacheDir)).filter((name) => name.includes(".bin.")),
      [],
      "no temporary files left",
    );
    assert.is(await codeCacheStatus(runtime), "hit");

    // Another build's cache is removed when a cache is written, once it has not been written for a day.
    const ours = await cacheFile();
    const recent = join(cacheDir, "code-0123456789abcdef-nodev0.0.0-x64.bin");
    const old = join(cacheDir, "code-fedcba9876543210-nodev0.0.0-x64.bin");
    await writeFile(recent, "other build");
    await writeFile(old, "other build");
    const dayAgo = new Date(Date.now() - 25 * 3_600_000);
    await utimes(old, dayAgo, dayAgo);
    await rm(ours);
    assert.is(await codeCacheStatus(runtime), "miss");
    const left = (await readdir(cacheDir)).filter((name) => name.startsWith("code-"));
    assert.ok(left.includes("code-0123456789abcdef-nodev0.0.0-x64.bin"), left.join(" "));
    assert.not.ok(left.includes("code-fedcba9876543210-nodev0.0.0-x64.bin"), left.join(" "));
    await rm(recent);

    // A cache directory others can reach is not used, and the provider starts without it.
    await chmod(cacheDir, 0o755);
    assert.is(await codeCacheStatus(runtime), "off");
  } finally {
    await rm(runtime, { recursive: true, force: true });
  }
});

/**
 * The handshake's CERT field as PEM. go-plugin writes the DER in base64 without `=` padding (RawStdEncoding); PEM
 * wants it padded, and OpenSSL refuses a body whose length is not a multiple of 4, which is the case whenever the
 * DER's length is not a multiple of 3 (the ECDSA signature's length varies from one certificate to the next).
 */
function pemFromHandshake(der: string): string {
  const padded = der.padEnd(Math.ceil(der.length / 4) * 4, "=");
  const body = padded.match(/.{1,64}/g)?.join("\n");
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

test("the handshake's unpadded certificate becomes PEM that Node parses, whatever the DER's length", () => {
  const unpadded = (raw: Buffer) => raw.toString("base64").replace(/=+$/, "");
  for (const length of [426, 427, 428]) {
    const bytes = Buffer.from(Array.from({ length }, (_, i) => (i * 7 + length) & 0xff));
    const lines = pemFromHandshake(unpadded(bytes)).split("\n").slice(1, -2);
    assert.ok(
      lines.every((l) => l.length <= 64 && /^[A-Za-z0-9+/]+={0,2}$/.test(l)),
      `${length}: ${lines.join("|")}`,
    );
    assert.is(lines.join("").length % 4, 0, `${length}: padded to a multiple of 4`);
    assert.ok(Buffer.from(lines.join(""), "base64").equals(bytes), `${length}: the same bytes back`);
  }
  // Real certificates, made until one of each DER length modulo 3 is in hand (each is a quarter or more of them).
  const byRemainder = new Map<number, Buffer>();
  for (let i = 0; i < 200 && byRemainder.size < 3; i++) {
    const raw = new X509Certificate(selfSignedCertificate(60_000).certPem).raw;
    byRemainder.set(raw.length % 3, raw);
  }
  assert.equal([...byRemainder.keys()].sort(), [0, 1, 2], "a certificate of each DER length modulo 3");
  for (const raw of byRemainder.values())
    assert.ok(
      new X509Certificate(pemFromHandshake(unpadded(raw))).raw.equals(raw),
      `DER of ${raw.length} bytes`,
    );
});

/** The provider serving with AutoMTLS for the client certificate `clientCertPem`, until `stop`. */
async function serving(clientCertPem: string) {
  const child = spawn(PROVIDER, [], {
    env: { ...process.env, [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE, PLUGIN_CLIENT_CERT: clientCertPem },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const line = await new Promise<string>((resolve, reject) => {
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (stdout.includes("\n")) resolve(stdout.split("\n")[0] ?? "");
    });
    child.on("exit", () => reject(new Error(`no handshake: ${stderr}`)));
  });
  // CORE|APP|unix|SOCKET|grpc|CERT, CERT the server certificate's DER in base64 without padding.
  const [, , , socket, , der] = line.split("|");
  return {
    socket: socket ?? "",
    serverCertPem: pemFromHandshake(der ?? ""),
    stderr: () => stderr,
    stop: () => stopChild(child, "SIGTERM"),
  };
}

/** gRPC health Check over the plugin socket, as go-plugin does, presenting `client` (or no certificate). */
function healthCheck(
  provider: { socket: string; serverCertPem: string },
  client?: { certPem: string; keyPem: string },
): Promise<unknown> {
  const credentials = grpc.credentials.createSsl(
    Buffer.from(provider.serverCertPem),
    client ? Buffer.from(client.keyPem) : null,
    client ? Buffer.from(client.certPem) : null,
  );
  const channel = new grpc.Client(`unix://${provider.socket}`, credentials, {
    "grpc.ssl_target_name_override": "localhost",
    "grpc.default_authority": "localhost",
  });
  const check = serviceDefinition("grpc.health.v1.Health").Check;
  return new Promise((resolve, reject) => {
    if (!check) return reject(new Error("no Check in the health service"));
    channel.makeUnaryRequest(
      check.path,
      check.requestSerialize,
      check.responseDeserialize,
      {},
      { deadline: Date.now() + 5000 },
      (err, value) => {
        channel.close();
        return err ? reject(err) : resolve(value);
      },
    );
  });
}

test("AutoMTLS: only Terraform's client certificate gets through; another one, or none, is refused", async () => {
  const terraform = await selfSignedCertificate(3_600_000);
  const other = await selfSignedCertificate(3_600_000);
  const provider = await serving(terraform.certPem);
  try {
    assert.equal(await healthCheck(provider, terraform), { status: 1 });
    const wrong = await healthCheck(provider, other).catch((err: Error) => err);
    assert.instance(wrong, Error);
    const none = await healthCheck(provider).catch((err: Error) => err);
    assert.instance(none, Error);
    assert.match(provider.stderr(), /refused a plugin connection without Terraform's client certificate/);
    assert.equal(await healthCheck(provider, terraform), { status: 1 }, "still serving Terraform");
  } finally {
    await provider.stop();
  }
});

test.run();
