import { X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { serverTls } from "../../providers/src/plugin/tls.js";
import { selfSignedCertificate } from "../../providers/src/plugin/tls-certificate.js";

// The AutoMTLS certificate cache the provider processes of one Terraform command share ($XDG_RUNTIME_DIR here).
let runtime = "";
const dir = () => join(runtime, "holdfast-provider");
const file = () => join(dir(), "server-tls.json");

test.before.each(() => {
  runtime = mkdtempSync(join(tmpdir(), "hf-tls-"));
  process.env.XDG_RUNTIME_DIR = runtime;
});

test.after.each(() => {
  rmSync(runtime, { recursive: true, force: true });
});

test("the first start makes and caches the certificate (user-only), the next ones reuse it", async () => {
  const first = await serverTls();
  assert.is(first.cached, false);
  assert.is(statSync(dir()).mode & 0o777, 0o700);
  assert.is(statSync(file()).mode & 0o777, 0o600);
  const second = await serverTls();
  assert.is(second.cached, true);
  assert.is(second.handshakeCert, first.handshakeCert);
  assert.is(second.keyPem, first.keyPem);
  // The handshake field is the certificate's DER, base64 without padding.
  const cert = new X509Certificate(second.certPem);
  assert.is(second.handshakeCert, cert.raw.toString("base64").replace(/=+$/, ""));
  assert.ok(cert.checkHost("localhost"));
  const hours = (Date.parse(cert.validTo) - Date.now()) / 3_600_000;
  assert.ok(hours > 0.9 && hours <= 1, `valid for about an hour, not ${hours} h`);
});

test("an unreadable, mismatched or nearly expired cache is replaced", async () => {
  mkdirSync(dir(), { mode: 0o700 });
  writeFileSync(file(), "not json", { mode: 0o600 });
  const fromGarbage = await serverTls();
  assert.is(fromGarbage.cached, false);
  assert.is((await serverTls()).handshakeCert, fromGarbage.handshakeCert, "the garbage was replaced");

  const other = await selfSignedCertificate(3_600_000);
  writeFileSync(file(), JSON.stringify({ certPem: fromGarbage.certPem, keyPem: other.keyPem }));
  const mismatched = await serverTls();
  assert.is(mismatched.cached, false);

  writeFileSync(file(), JSON.stringify(await selfSignedCertificate(60_000)));
  const expiring = await serverTls();
  assert.is(expiring.cached, false, "a certificate with a minute left is not used");
  assert.is.not(readFileSync(file(), "utf8"), "");
});

test("a cache directory others can read is not used", async () => {
  mkdirSync(dir());
  chmodSync(dir(), 0o755);
  assert.is((await serverTls()).cached, false);
  assert.is((await serverTls()).cached, false);
  assert.throws(() => statSync(file()));
});

test.run();
