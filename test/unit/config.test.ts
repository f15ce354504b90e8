import { rejects } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildProgram } from "../../agent/src/cli/program.js";
import {
  AGENT_SETTINGS,
  joinHostPort,
  loadAgentConfig,
  splitHostPort,
} from "../../agent/src/config/index.js";
import { SpecError } from "../../agent/src/errors.js";
import { renderSettingsDoc, SETTINGS_DOC_PATH } from "../../scripts/gen-settings-docs.js";

test("defaults fill in, flags override the file, paths become absolute", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-config-"));
  try {
    const file = join(dir, "agent.json");
    await writeFile(file, JSON.stringify({ dataDir: "data", api: "127.0.0.1:9100", zone: "z1" }));
    const config = await loadAgentConfig({ file, flags: { api: "127.0.0.2:9200", nodeId: "n1" } });
    assert.is(config.api, "127.0.0.2:9200");
    assert.is(config.zone, "z1");
    assert.is(config.nodeId, "n1");
    assert.is(config.store, "local");
    assert.ok(config.dataDir.startsWith("/"));
    assert.equal(config.pools, [join(config.dataDir, "pool")]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const [flags, field] of [
  [{ dataDir: "/d", api: "localhost" }, "api"],
  [{ dataDir: "/d", api: "127.0.0.1:70000" }, "api"],
  [{ dataDir: "/d", store: "zookeeper://x" }, "store"],
  [{ dataDir: "/d", store: "etcd://10.0.0.5:2379" }, "store"],
  [{ dataDir: "/d", store: "etcds://10.0.0.5:2379", etcdCert: "/c", etcdKey: "/k" }, "etcdCa"],
  [{ dataDir: "/d", store: "etcds://10.0.0.5:2379", etcdCa: "/a", etcdKey: "/k" }, "etcdCert"],
  [{ dataDir: "/d", store: "etcd://10.0.0.5:2379", etcdPlainHttp: true, etcdCa: "/a" }, "etcdCa"],
  [{ dataDir: "/d", nodeId: "bad id!" }, "nodeId"],
  [{ dataDir: "/d", token: "short" }, "token"],
  [{}, "dataDir"],
] as const) {
  test(`bad setting ${field}=${JSON.stringify(flags)} names the field`, async () => {
    await rejects(
      () => loadAgentConfig({ flags }),
      (err: unknown) =>
        err instanceof SpecError && err.field === field && err.message.startsWith(`${field}:`),
    );
  });
}

test("etcd: etcds:// takes the three TLS files (made absolute); plain etcd:// only when the config says it is a lab", async () => {
  const tls = await loadAgentConfig({
    flags: { dataDir: "/d", store: "etcds://a:2379,b:2379", etcdCa: "ca", etcdCert: "c", etcdKey: "k" },
  });
  assert.equal(tls.etcdTls, {
    etcdCa: join(process.cwd(), "ca"),
    etcdCert: join(process.cwd(), "c"),
    etcdKey: join(process.cwd(), "k"),
  });
  const lab = await loadAgentConfig({
    flags: { dataDir: "/d", store: "etcd://a:2379", etcdPlainHttp: true },
  });
  assert.is(lab.etcdTls, undefined);
  await rejects(
    () => loadAgentConfig({ flags: { dataDir: "/d", store: "etcd://a:2379" } }),
    /store: etcd:\/\/ is plain HTTP.*--etcd-plain-http/,
  );
});

test("HOST:PORT has one parser: IPv6 hosts lose their brackets and get them back; the replication default follows the API", async () => {
  assert.equal(splitHostPort("[fd00::7]:9002"), { host: "fd00::7", port: 9002 });
  assert.equal(splitHostPort("10.0.0.5:2379"), { host: "10.0.0.5", port: 2379 });
  assert.equal(splitHostPort("node1.example:9001"), { host: "node1.example", port: 9001 });
  assert.is(joinHostPort("fd00::7", 9002), "[fd00::7]:9002");
  assert.is(joinHostPort("10.0.0.5", 9002), "10.0.0.5:9002");
  const v6 = await loadAgentConfig({ flags: { dataDir: "/d", api: "[fd00::7]:9001" } });
  assert.is(v6.replication, "[fd00::7]:9002");
});

test("a config file that is not JSON names the file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-config-"));
  try {
    await writeFile(join(dir, "bad.json"), "{");
    await rejects(
      () => loadAgentConfig({ file: join(dir, "bad.json"), flags: {} }),
      /bad\.json is not valid JSON/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** `holdfast agent ARGS` up to the config check: every case here fails there, before anything starts. */
async function agentRefuses(args: string[], field: string): Promise<void> {
  const program = buildProgram();
  await rejects(
    () => program.parseAsync(["node", "holdfast", "agent", ...args]),
    (err: unknown) => err instanceof SpecError && err.field === field,
    `${args.join(" ")} should be refused naming ${field}`,
  );
}

test("every setting but the secret token is a flag of `holdfast agent`, reaching the setting it names", async () => {
  const agent = buildProgram().commands.find((c) => c.name() === "agent");
  const help = agent?.helpInformation() ?? "";
  for (const [name, row] of Object.entries(AGENT_SETTINGS)) {
    if (row.flag && "none" in row.flag) assert.not.match(help, `--${name}`, name);
  }
  assert.match(help, "--no-inline-io");
  assert.match(help, "--lease-ttl <seconds>");
  assert.match(help, "(default 5)");
  // Each fails the schema under the setting's own name, so the flag reached that setting.
  await agentRefuses(["--data-dir", "/x", "--pool", "a", "--pool", ""], "pools.1");
  await agentRefuses(["--data-dir", "/x", "--certificate-name", "not a name"], "certificateNames.0");
  await agentRefuses(["--data-dir", "/x", "--lease-ttl", "1"], "leaseTtl");
  await agentRefuses(["--api", "127.0.0.1:9001"], "dataDir");
});

test("a switch left off does not override the config file (commander's default for --no-inline-io is true)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-config-"));
  try {
    await writeFile(join(dir, "agent.json"), JSON.stringify({ dataDir: dir, inlineIo: "yes" }));
    await agentRefuses(["--config", join(dir, "agent.json")], "inlineIo");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("docs/agent-settings.md is what scripts/gen-settings-docs.ts writes from the table", () => {
  assert.fixture(readFileSync(SETTINGS_DOC_PATH, "utf8"), renderSettingsDoc());
});

test.run();
