import { stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, sh } from "../support/agent-process.js";

// The CLI as a user runs it, against a real agent: flags derived from the spec table, tables, JSON, exit codes.
let agent: AgentProcess;

test.before(async () => {
  agent = await AgentProcess.start();
});
test.after(async () => {
  await agent?.destroy();
});

test("create with flags instead of an inline spec: every spec key is a flag, labels as k=v", async () => {
  const v = await agent.json<{
    name: string;
    size: number;
    fs: string;
    ioProfile: string;
    labels: object;
    spec: string;
  }>(
    "volume",
    "create",
    "cache",
    "--size",
    "3G",
    "--fs",
    "xfs",
    "--io-profile",
    "random",
    "--label",
    "app=redis",
    "--label",
    "tier=cache",
  );
  assert.is(v.name, "cache");
  assert.is(v.size, 3 * 1024 ** 3);
  assert.is(v.fs, "xfs");
  assert.is(v.ioProfile, "random");
  assert.equal(v.labels, { app: "redis", tier: "cache" });
  assert.is(v.spec, "name=cache,size=3G,repl=1,fs=xfs,io_profile=random,labels=app:redis;tier:cache");
});

test("a key given both in the spec and as a flag is refused, naming the key", async () => {
  const r = await agent.cli("volume", "create", "name=dup,size=1G", "--size", "2G");
  assert.is(r.code, 2);
  assert.match(r.stderr, /size: is given both in `spec` and as a separate key/);
});

test("human output is tables; --output json is JSON for every command", async () => {
  const list = await agent.cli("volume", "list");
  assert.is(list.code, 0);
  assert.match(list.stdout, /^NAME\s+ID\s+SIZE\s+REPL\s+FS\s+STATE/);
  assert.match(list.stdout, /cache\s+\w+\s+3\.0 GiB\s+1\s+xfs\s+detached/);
  const inspect = await agent.cli("volume", "inspect", "cache");
  assert.match(inspect.stdout, /REPLICA NODE\s+POOL\s+STATE/);
  assert.match(inspect.stdout, /node1\s+\S+\s+in-sync/);
  const status = await agent.json<{
    nodes: Array<{ id: string; state: string }>;
    volumes: { total: number };
  }>("cluster", "status");
  assert.equal(
    status.nodes.map((n) => [n.id, n.state]),
    [["node1", "up"]],
  );
  assert.is(status.volumes.total, 1);
  const nodes = await agent.cli("node", "list");
  assert.match(nodes.stdout, /^NODE\s+API\s+REPLICATION\s+ZONE\s+RACK\s+STATE\s+CAPACITY\s+USED/);
  const deleted = await agent.json<{ deleted: string }>("volume", "delete", "cache");
  assert.is(deleted.deleted, "cache");
});

test("the agent's token file is private to its owner (mode 0600)", async () => {
  const mode = (await stat(join(agent.dir, "data", "token"))).mode & 0o777;
  assert.is(mode.toString(8), "600");
  assert.ok(agent.token.length >= 32);
});

test("cluster init creates the cluster CA once: key mode 0600, a CA certificate openssl accepts", async () => {
  const dir = join(agent.dir, "ca");
  const made = await agent.json<{ cert: string; key: string }>(
    "cluster",
    "init",
    "--dir",
    dir,
    "--cluster",
    "c1",
  );
  assert.is(((await stat(made.key)).mode & 0o777).toString(8), "600");
  const text = await sh("openssl", ["x509", "-in", made.cert, "-noout", "-text"]);
  assert.match(text, /CA:TRUE/);
  assert.match(text, /Certificate Sign/);
  await sh("openssl", ["verify", "-CAfile", made.cert, made.cert]);
  const again = await agent.cli("cluster", "init", "--dir", dir);
  assert.is(again.code, 1);
  assert.match(again.stderr, /ca\.crt already exists/);
});

test("an unreachable agent is exit 1 with a message naming the URL", async () => {
  const r = await agent.cli("volume", "list");
  assert.is(r.code, 0);
  const saved = agent.port;
  await agent.stop("SIGTERM");
  const down = await agent.cli("volume", "list");
  assert.is(down.code, 1);
  assert.match(down.stderr, new RegExp(`cannot reach the agent at http://127.0.0.1:${saved}`));
  await agent.restart();
});

test("a malformed spec is refused by the CLI itself (exit 2, naming the key), with or without an agent", async () => {
  await agent.stop("SIGTERM");
  try {
    for (const [args, message] of [
      [["volume", "create", "name=x,size=1.5G"], /^holdfast: size: /m],
      [["volume", "create", "name=x,repl=4"], /^holdfast: repl: /m],
      [["volume", "create", "name=x", "--size", "1.5G"], /^holdfast: size: /m],
      [["volume", "create", "name=x,size=1G", "--size", "2G"], /^holdfast: size: is given both/m],
      [["volume", "create", "name=x,bogus=1"], /^holdfast: bogus: unknown key/m],
    ] as const) {
      const r = await agent.cli(...args);
      assert.is(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.not.match(r.stderr, /cannot reach/);
    }
  } finally {
    await agent.restart();
  }
});

test.run();
