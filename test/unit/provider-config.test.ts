import { test } from "uvu";
import * as assert from "uvu/assert";
import { HoldfastClient } from "../../providers/src/client.js";
import { createLogger } from "../../providers/src/plugin/log.js";
import { type ObjectValue, UNKNOWN } from "../../providers/src/protocol/index.js";
import { HoldfastProvider, providerSchema, validateProviderConfig } from "../../providers/src/provider.js";

// The provider block's checks that need no agent; the ones that do (token refused, agent unreachable) are in
// test/integration/terraform-config.test.ts.

const logger = createLogger("provider.test", "error", () => undefined);

function config(values: ObjectValue): ObjectValue {
  const all: ObjectValue = {};
  for (const attr of providerSchema.attributes) all[attr.name] = null;
  return { ...all, ...values };
}

const paths = (diagnostics: { path?: string[] }[]) => diagnostics.map((d) => d.path?.join("."));

test("validate: malformed settings point at their attribute", () => {
  assert.equal(paths(validateProviderConfig(config({ endpoint: "ftp://x" }))), ["endpoint"]);
  assert.equal(paths(validateProviderConfig(config({ endpoint: "not a url" }))), ["endpoint"]);
  assert.equal(paths(validateProviderConfig(config({ request_timeout: "forever" }))), ["request_timeout"]);
  assert.equal(paths(validateProviderConfig(config({ max_retries: 11 }))), ["max_retries"]);
  assert.equal(paths(validateProviderConfig(config({ max_retries: 1.5 }))), ["max_retries"]);
  assert.equal(paths(validateProviderConfig(config({ ca_certificate: "ca.crt" }))), ["ca_certificate"]);
  const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  assert.equal(paths(validateProviderConfig(config({ ca_certificate: pem, ca_file: "ca.crt" }))), [
    "ca_certificate",
  ]);
  assert.equal(
    validateProviderConfig(config({ endpoint: "https://h:9001", request_timeout: "2m", max_retries: 0 })),
    [],
  );
  assert.ok(providerSchema.attributes.find((a) => a.name === "token")?.sensitive, "token is sensitive");
});

test("configure: missing endpoint and token, an unreadable ca_file or HOLDFAST_CA", async () => {
  const saved = {
    api: process.env.HOLDFAST_API,
    token: process.env.HOLDFAST_TOKEN,
    ca: process.env.HOLDFAST_CA,
  };
  delete process.env.HOLDFAST_API;
  delete process.env.HOLDFAST_TOKEN;
  delete process.env.HOLDFAST_CA;
  try {
    const provider = new HoldfastProvider(logger);
    assert.equal(paths(await provider.configure(config({}))), ["endpoint", "token"]);
    const ca = await provider.configure(
      config({ endpoint: "http://127.0.0.1:1", token: "t", ca_file: "/nonexistent" }),
    );
    assert.equal(paths(ca), ["ca_file"]);
    process.env.HOLDFAST_CA = "/nonexistent";
    const fromEnv = await provider.configure(config({ endpoint: "http://127.0.0.1:1", token: "t" }));
    assert.equal(
      fromEnv.map((d) => [d.summary, d.path?.join(".")]),
      [["Cannot read HOLDFAST_CA", "ca_file"]],
    );
    assert.not.instance(provider.client(), HoldfastClient, "not configured after errors");
  } finally {
    if (saved.api !== undefined) process.env.HOLDFAST_API = saved.api;
    if (saved.token !== undefined) process.env.HOLDFAST_TOKEN = saved.token;
    if (saved.ca === undefined) delete process.env.HOLDFAST_CA;
    else process.env.HOLDFAST_CA = saved.ca;
  }
});

test("configure: settings not known until apply leave the provider unconfigured, without an error", async () => {
  const provider = new HoldfastProvider(logger);
  assert.equal(await provider.configure(config({ endpoint: UNKNOWN, token: "t" })), []);
  assert.not.instance(provider.client(), HoldfastClient);
});

test.run();
