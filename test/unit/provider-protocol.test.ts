import { decode, Encoder, ExtData } from "@msgpack/msgpack";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createLogger, hclogTimestamp, redact } from "../../providers/src/plugin/log.js";
import {
  type CtyType,
  decodeValue,
  encodeValue,
  fromJsonState,
  UNKNOWN,
} from "../../providers/src/protocol/index.js";
import { parseDuration } from "../../providers/src/timeouts.js";

const TYPE: CtyType = [
  "object",
  {
    name: "string",
    size: "dynamic",
    labels: ["map", "string"],
    zones: ["list", "string"],
    replicas: "number",
  },
];
const encoder = new Encoder();

test("values: every attribute is written, absent ones as nil, and read back", () => {
  const bytes = encodeValue({ name: "pg", size: "20G" }, TYPE);
  assert.equal(decode(bytes), {
    name: "pg",
    size: [new Uint8Array(Buffer.from('"string"')), "20G"],
    labels: null,
    zones: null,
    replicas: null,
  });
  assert.equal(decodeValue(bytes, TYPE), {
    name: "pg",
    size: "20G",
    labels: null,
    zones: null,
    replicas: null,
  });
});

test("values: a dynamic attribute carries its type, number or string", () => {
  const value = { name: "a", size: 1073741824, labels: { app: "pg" }, zones: ["z1"], replicas: 2 };
  assert.equal(decodeValue(encodeValue(value, TYPE), TYPE), value);
});

test("values: unknown is msgpack extension 0; a refined unknown (extension 12) reads as unknown too", () => {
  const encoded = decode(encodeValue({ name: UNKNOWN }, TYPE)) as Record<string, unknown>;
  assert.instance(encoded.name, ExtData);
  assert.is((encoded.name as ExtData).type, 0);
  const refined = encoder.encode({ name: new ExtData(12, new Uint8Array([1, 2])), size: null, labels: null });
  assert.is((decodeValue(refined, TYPE) as Record<string, unknown>).name, UNKNOWN);
  assert.is(decodeValue(new Uint8Array(), TYPE), null, "no bytes: null");
});

test("values: stored JSON state upgrades to the current attributes", () => {
  const json = { name: "pg", size: { value: "2G", type: "string" }, zones: ["a"], gone: "dropped" };
  assert.equal(fromJsonState(json, TYPE), {
    name: "pg",
    size: "2G",
    labels: null,
    zones: ["a"],
    replicas: null,
  });
});

test("log: hclog lines with six fractional digits and no secrets", () => {
  assert.match(hclogTimestamp(new Date("2026-01-02T03:04:05.678Z")), /^2026-01-02T03:04:05\.678000Z$/);
  const lines: string[] = [];
  const logger = createLogger("provider.test", "info", (line) => lines.push(line));
  logger.debug("dropped");
  logger.info("configuring", {
    endpoint: "http://x",
    token: "s3cret",
    headers: { authorization: "Bearer s3cret" },
  });
  assert.is(lines.length, 1);
  const entry = JSON.parse(lines[0] ?? "{}");
  assert.is(entry["@level"], "info");
  assert.is(entry["@message"], "configuring");
  assert.match(entry["@timestamp"], /\.\d{6}Z$/);
  assert.not.match(lines[0] ?? "", "s3cret");
  assert.equal(redact({ private_key: "k", nested: { password: "p" }, ok: 1 }), {
    private_key: "[redacted]",
    nested: { password: "[redacted]" },
    ok: 1,
  });
});

test("durations: Go-style, and nonsense refused", () => {
  assert.is(parseDuration("90s"), 90_000);
  assert.is(parseDuration("1h30m"), 5_400_000);
  assert.is(parseDuration("500ms"), 500);
  assert.is(parseDuration("1.5m"), 90_000);
  for (const bad of ["", "10", "soon", "5 m", "-1s", "0s", "1s2"])
    assert.is(parseDuration(bad), undefined, bad);
});

test.run();
