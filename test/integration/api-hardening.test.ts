import { chmod, copyFile, readdir, symlink } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { LocalStore } from "../../agent/src/meta/index.js";
import { AgentProcess, sh } from "../support/agent-process.js";
import { waitFor } from "../support/dev-cluster.js";
import { NBD, RawNbdClient } from "../support/nbd-client.js";

// The host side of the trust boundary (docs/decisions/0010-trust-boundary.md), against a real agent: mounts stay in
// the mount root and are nosuid,nodev; slow and idle API clients are cut off or capped; a 500 says only a code and a
// request id. The API request timeout is 2 s here and the connection cap 64.
let agent: AgentProcess;

test.before(async () => {
  agent = await AgentProcess.start(["--api-request-timeout", "2", "--api-max-connections", "64"]);
  await agent.json("volume", "create", "name=files,size=64M");
});
test.after(async () => {
  await agent?.cli("volume", "unmount", "files");
  await agent?.destroy();
});

const root = () => join(agent.dir, "mnt");

test("a mount path outside the mount root is refused, also through a symbolic link; inside, it is nosuid,nodev", async () => {
  for (const path of ["/etc/cron.d", join(agent.dir, "data"), "../data"]) {
    const r = await agent.api("POST", "/v1/volumes/files/mount", { path });
    assert.is(r.status, 400, JSON.stringify(r.body));
    assert.is(r.body.error.field, "path");
    assert.match(r.body.error.message, "must be inside the mount root");
  }
  await symlink("/etc", join(root(), "escape"));
  const linked = await agent.api("POST", "/v1/volumes/files/mount", {
    path: join(root(), "escape", "cron.d"),
  });
  assert.is(linked.status, 400);
  assert.match(linked.body.error.message, "(it resolves to /etc/cron.d)");

  const mounted = await agent.api("POST", "/v1/volumes/files/mount", { path: "files" });
  assert.is(mounted.status, 200, JSON.stringify(mounted.body));
  assert.is(mounted.body.mountPath, join(root(), "files"));
  const options = (await sh("findmnt", ["-no", "OPTIONS", join(root(), "files")])).trim().split(",");
  assert.ok(options.includes("nosuid") && options.includes("nodev"), options.join(","));
});

test("a setuid-root binary on a volume runs as its caller, not as root", async () => {
  const mnt = join(root(), "files");
  const id = join(mnt, "id");
  await copyFile("/usr/bin/id", id);
  await chmod(id, 0o4755);
  // The root is 0700 (nobody may walk into it), as is the test's directory: open both for this test's caller only.
  await chmod(agent.dir, 0o711);
  await chmod(root(), 0o711);
  const euid = (await sh("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", id, "-u"])).trim();
  assert.is(euid, "65534", "the setuid bit gave the caller root");
});

test("a client trickling its request is cut off within the request timeout", async () => {
  const socket = connect(agent.port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  let answer = "";
  socket.on("data", (chunk) => {
    answer += chunk.toString();
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write("GET /v1/volumes HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  // A byte every 200 ms. The bound is 2 s; 60 bytes (12 s) leave room for a loaded machine and still fail Node's
  // own defaults (60 s for the headers).
  let sent = 0;
  const trickle = setInterval(() => {
    if (!socket.destroyed && sent++ < 60) socket.write("a");
  }, 200);
  await closed;
  clearInterval(trickle);
  assert.ok(sent < 60, "the agent waited for the whole trickle");
  assert.match(answer, /^HTTP\/1\.1 408/, "and answered 408 Request Timeout");
});

test("a thousand idle connections on a node with 1024 file descriptors: NBD I/O and the API carry on", async () => {
  const pid = agent.child?.pid;
  assert.ok(pid);
  // A small descriptor limit, so that connections the agent kept would take what its I/O needs.
  await sh("prlimit", [`--pid=${pid}`, "--nofile=1024:1024"]);
  await agent.json("volume", "attach", "files");
  const descriptors = async () => (await readdir(`/proc/${pid}/fd`)).length;
  const before = await descriptors();
  const socketPath = join(agent.dir, "data", "run", "nbd", "files.sock");
  const idle: Socket[] = [];
  await Promise.all(
    Array.from({ length: 1000 }, async () => {
      const socket = connect(agent.port, "127.0.0.1");
      socket.on("error", () => undefined);
      // Flowing, so that the agent closing it is seen.
      socket.resume();
      idle.push(socket);
      await new Promise<void>((resolve) => {
        socket.once("connect", () => resolve());
        socket.once("close", () => resolve());
      });
    }),
  );
  try {
    const { client } = await RawNbdClient.open(socketPath, "files");
    const data = Buffer.alloc(64 * 1024, 0x5a);
    const w = await client.request({
      type: NBD.CMD_WRITE,
      cookie: 1n,
      offset: 0,
      length: data.length,
      payload: data,
    });
    assert.is(w.error, 0, "a write through NBD");
    const r = await client.request({ type: NBD.CMD_READ, cookie: 2n, offset: 0, length: data.length });
    assert.ok(r.data?.equals(data), "and it reads back");
    client.close();
    const held = (await descriptors()) - before;
    assert.ok(held <= 64 + 16, `the agent holds ${held} more descriptors; its connection cap is 64`);
    // Those it held are closed once idle past the bounds; then the API answers again.
    await Promise.all(idle.map((s) => (s.destroyed ? undefined : new Promise((r) => s.once("close", r)))));
    assert.is((await agent.api("GET", "/v1/volumes")).status, 200);
  } finally {
    for (const s of idle) s.destroy();
  }
});

test("a 500 says only its code and a request id; the details are in the agent's log under that id", async () => {
  await agent.stop();
  // A record no agent writes (a name mapped to a path), read back when the volume is asked for: an internal error.
  const store = await LocalStore.open(join(agent.dir, "data", "meta.json"));
  await store.commit([], [{ put: "/holdfast/default/names/evil", value: "../../etc" }]);
  await store.close();
  await agent.restart();
  const r = await agent.api("GET", "/v1/volumes/evil");
  assert.is(r.status, 500);
  assert.equal(Object.keys(r.body.error).sort(), ["code", "message", "request"]);
  assert.is(r.body.error.code, "store.bad_record");
  assert.not.match(r.body.error.message, "names/evil");
  // The agent's log reaches this process through a pipe, after the answer may have.
  const line = await waitFor("the request's log line", async () =>
    agent.log
      .split("\n")
      .find((l) => l.includes(`"reqId":"${r.body.error.request}"`) && l.includes("names/evil")),
  );
  assert.match(line, "store.bad_record");
});

test.run();
