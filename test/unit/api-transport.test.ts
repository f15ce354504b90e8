import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { apiTransport, isLoopback } from "../../agent/src/api/index.js";
import { SpecError } from "../../agent/src/errors.js";
import { schemeHint, tlsProblem } from "../../agent/src/tls-trust/index.js";
import { createClusterCa, issueNodeIdentity, saveIdentity } from "../../agent/src/transport/index.js";

// How the API listens (api/api-transport.ts): HTTPS with a certificate, plain only on loopback or when told to.

/** A logger that keeps its lines, to see what was warned. */
function recording() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

const noCertificate = { apiPlainHttp: false, tlsDir: "/nonexistent/tls" };

test("loopback is 127.0.0.0/8, ::1 and localhost; nothing else", () => {
  for (const host of ["127.0.0.1", "127.0.100.5", "::1", "localhost"]) assert.ok(isLoopback(host), host);
  for (const host of [
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "192.0.2.2",
    "128.0.0.1",
    "localhost.example",
    "::ffff:127.0.0.1",
  ])
    assert.not.ok(isLoopback(host), host);
});

test("without a certificate: plain on loopback, refused elsewhere naming api, warned with apiPlainHttp", async () => {
  const { logger, warnings } = recording();
  assert.equal(await apiTransport({ ...noCertificate, api: "[::1]:9001" }, undefined, logger), {
    host: "::1",
    port: 9001,
    url: "http://[::1]:9001",
  });
  const refused = await apiTransport({ ...noCertificate, api: "10.0.0.1:9001" }, undefined, logger).catch(
    (e) => e,
  );
  assert.instance(refused, SpecError);
  assert.is(refused.field, "api");
  assert.match(refused.message, /^api: 10\.0\.0\.1:9001 is not a loopback address/);
  assert.equal(warnings(), []);
  const lab = await apiTransport(
    { ...noCertificate, api: "10.0.0.1:9001", apiPlainHttp: true },
    undefined,
    logger,
  );
  assert.is(lab.url, "http://10.0.0.1:9001");
  assert.is(lab.https, undefined);
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0] ?? "", /tokens cross the network in clear/);
});

test("with a certificate in tlsDir: https on any address, loopback too; a host it does not name is warned", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-apitransport-"));
  try {
    const ca = await createClusterCa({ cluster: "t" });
    await saveIdentity(
      dir,
      await issueNodeIdentity(ca, { nodeId: "n1", addresses: ["127.0.0.1", "10.0.0.1"] }),
    );
    const { logger, warnings } = recording();
    const local = await apiTransport(
      { api: "127.0.0.1:9001", apiPlainHttp: false, tlsDir: dir },
      undefined,
      logger,
    );
    assert.is(local.url, "https://127.0.0.1:9001");
    assert.ok(local.https?.cert.includes("BEGIN CERTIFICATE"));
    assert.is(local.https?.minVersion, "TLSv1.2");
    const remote = await apiTransport(
      { api: "10.0.0.1:9001", apiPlainHttp: true, tlsDir: dir },
      undefined,
      logger,
    );
    assert.is(remote.url, "https://10.0.0.1:9001", "apiPlainHttp does not turn TLS off");
    assert.equal(warnings(), []);
    await apiTransport({ api: "10.0.0.2:9001", apiPlainHttp: false, tlsDir: dir }, undefined, logger);
    assert.match(warnings()[0] ?? "", /does not name the API's host/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("TLS failure codes and scheme hints", () => {
  assert.is(tlsProblem("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "untrusted");
  assert.is(tlsProblem("SELF_SIGNED_CERT_IN_CHAIN"), "untrusted");
  assert.is(tlsProblem("ERR_TLS_CERT_ALTNAME_INVALID"), "name");
  assert.is(tlsProblem("CERT_HAS_EXPIRED"), "expired");
  assert.is(tlsProblem("ECONNREFUSED"), undefined);
  assert.match(schemeHint("http://h:1", "ECONNRESET"), /use https:\/\//);
  assert.match(schemeHint("https://h:1", "EPROTO"), /without TLS/);
  assert.is(schemeHint("http://h:1", "ECONNREFUSED"), "");
});

test.run();
