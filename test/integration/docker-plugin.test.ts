import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, sh } from "../support/agent-process.js";
import { callPlugin, PLUGIN_TYPE, type PluginAnswer } from "../support/docker-plugin.js";

// The Docker volume plugin of a real agent, driven through HTTP on its unix socket exactly as dockerd sends its
// calls: POST, JSON bodies with Docker's field names (Opts null when empty, an Accept header). No Docker engine
// runs here, so the test plays dockerd's part; the volumes, mounts and files are real.
let agent: AgentProcess;
let socket = "";

test.before(async () => {
  agent = await AgentProcess.start();
  socket = join(agent.dir, "plugin.sock");
});
test.after(async () => {
  await agent?.destroy();
});

/** One plugin call; `body` is sent as is when it is a string (malformed JSON), else as JSON. */
const call = (path: string, body: unknown = {}, contentType: string | null = PLUGIN_TYPE) =>
  callPlugin(socket, path, body, contentType);

/** A call that must succeed: Err empty, status 200. */
async function ok(path: string, body: unknown = {}): Promise<PluginAnswer["body"]> {
  const r = await call(path, body);
  assert.is(r.status, 200, `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
  assert.ok(!r.body.Err, `${path}: ${r.body.Err}`);
  return r.body;
}

/** A call that must fail with an Err matching `pattern`. */
async function refused(path: string, body: unknown, pattern: RegExp): Promise<PluginAnswer> {
  const r = await call(path, body);
  assert.ok(
    r.status >= 400,
    `${path} ${JSON.stringify(body)} answered ${r.status}: ${JSON.stringify(r.body)}`,
  );
  assert.match(String(r.body.Err), pattern);
  return r;
}

const mountedAt = async (path: string) =>
  (await sh("findmnt", ["-rno", "TARGET"])).split("\n").includes(path);

const inspect = (name: string) =>
  agent.json<{ state: string; size: number; scale: number }>("volume", "inspect", name);

test("Activate and Capabilities answer in Docker's terms, with the plugin content type", async () => {
  const activate = await call("/Plugin.Activate", null);
  assert.is(activate.status, 200);
  assert.is(activate.type, PLUGIN_TYPE);
  assert.equal(activate.body, { Implements: ["VolumeDriver"] });
  assert.equal(await ok("/VolumeDriver.Capabilities"), { Capabilities: { Scope: "global" } });
});

test("dockerd's own requests, with no Content-Type at all, are read as JSON", async () => {
  const r = await call("/VolumeDriver.List", {}, null);
  assert.is(r.status, 200);
  assert.ok(Array.isArray(r.body.Volumes));
});

test("create by inline spec; every later call takes the spec string or the bare name", async () => {
  const spec = "name=pg,size=64M,labels=app:pg";
  assert.equal(await ok("/VolumeDriver.Create", { Name: spec, Opts: null }), { Err: "" });
  const v = await inspect("pg");
  assert.is(v.size, 64 * 2 ** 20);
  for (const name of [spec, "pg"]) {
    const got = (await ok("/VolumeDriver.Get", { Name: name })).Volume as {
      Name: string;
      Mountpoint: string;
      Status: { spec: string; state: string };
    };
    assert.is(got.Name, name, "Get answers with the name Docker asked by");
    assert.is(got.Mountpoint, "");
    assert.is(got.Status.spec, "name=pg,size=64M,repl=1,fs=ext4,labels=app:pg");
    assert.equal(await ok("/VolumeDriver.Path", { Name: name }), { Mountpoint: "", Err: "" });
  }
  const list = (await ok("/VolumeDriver.List")).Volumes as Array<{ Name: string }>;
  assert.ok(list.some((x) => x.Name === "pg"));
});

test("create again: a compatible spec (or the same keys as Opts) is idempotent, an incompatible one an error", async () => {
  await ok("/VolumeDriver.Create", { Name: "name=pg,size=64M,labels=app:pg", Opts: {} });
  await ok("/VolumeDriver.Create", { Name: "pg", Opts: { size: "64M" } });
  await ok("/VolumeDriver.Create", { Name: "pg", Opts: null });
  await refused(
    "/VolumeDriver.Create",
    { Name: "name=pg,size=64M,fs=xfs" },
    /volume "pg" exists with fs=ext4, not fs=xfs/,
  );
  await refused("/VolumeDriver.Create", { Name: "name=pg,size=1G" }, /exists with size=64M, not size=1G/);
  await refused(
    "/VolumeDriver.Create",
    { Name: "name=pg,size=64M", Opts: { size: "128M" } },
    /size: the volume name says size=64M but Opts say size=128M/,
  );
  await ok("/VolumeDriver.Create", { Name: "name=lab,size=16M,labels=a:1;b:2" });
  // Labels in another order are the same labels.
  await ok("/VolumeDriver.Create", { Name: "name=lab,labels=b:2;a:1" });
  await refused(
    "/VolumeDriver.Create",
    { Name: "name=lab,labels=a:1" },
    /exists with labels=a:1;b:2, not labels=a:1/,
  );
  await ok("/VolumeDriver.Remove", { Name: "lab" });
  await ok("/VolumeDriver.Create", { Name: "opts1", Opts: { size: "32M", io_profile: "db" } });
  assert.is((await inspect("opts1")).size, 32 * 2 ** 20);
  await ok("/VolumeDriver.Remove", { Name: "opts1" });
});

test("mount writes files; containers share one mount; the last unmount unmounts and detaches", async () => {
  const spec = "name=pg,size=64M,labels=app:pg";
  const first = await ok("/VolumeDriver.Mount", { Name: spec, ID: "c1" });
  const path = String(first.Mountpoint);
  assert.is(path, join(agent.dir, "mnt", "pg"));
  assert.ok(await mountedAt(path));
  await sh("sh", ["-c", `echo from-c1 > ${path}/note && sync -f ${path}/note`]);

  const second = await ok("/VolumeDriver.Mount", { Name: "pg", ID: "c2" });
  assert.is(second.Mountpoint, path, "a second container on this node shares the mount");
  assert.equal(await ok("/VolumeDriver.Path", { Name: spec }), { Mountpoint: path, Err: "" });
  assert.is((await inspect("pg")).state, "attached");

  await ok("/VolumeDriver.Unmount", { Name: spec, ID: "c1" });
  assert.ok(await mountedAt(path), "still mounted while c2 holds it");
  assert.is((await sh("cat", [`${path}/note`])).trim(), "from-c1");
  await ok("/VolumeDriver.Unmount", { Name: "pg", ID: "c2" });
  assert.not.ok(await mountedAt(path), "the last holder's unmount unmounts");
  assert.is((await inspect("pg")).state, "detached");
  assert.equal(await ok("/VolumeDriver.Path", { Name: "pg" }), { Mountpoint: "", Err: "" });

  const again = await ok("/VolumeDriver.Mount", { Name: spec, ID: "c3" });
  assert.is((await sh("cat", [`${again.Mountpoint}/note`])).trim(), "from-c1", "the files survived");
  await ok("/VolumeDriver.Unmount", { Name: spec, ID: "c3" });
});

test("scale=3 through Docker and through REST make the same set: NAME.1 to NAME.3, each with the same spec", async () => {
  await ok("/VolumeDriver.Create", { Name: "name=dset,size=32M,scale=3,io_priority=high", Opts: null });
  const rest = await agent.api("POST", "/v1/volumes", {
    spec: "name=rset,size=32M,scale=3,io_priority=high",
  });
  assert.is(rest.status, 201, JSON.stringify(rest.body));
  const fromRest = rest.body as {
    name: string;
    scale: number;
    members: Array<{ name: string; spec: string }>;
  };
  const fromDocker = (await agent.api("GET", "/v1/volume-sets/dset")).body as typeof fromRest;
  const shape = (set: typeof fromRest) =>
    set.members.map((m) => [m.name.replace(`${set.name}.`, ""), m.spec.replace(`name=${m.name},`, "")]);
  assert.equal([fromRest.name, fromRest.scale, fromDocker.scale], ["rset", 3, 3]);
  assert.equal(
    shape(fromRest).map(([index]) => index),
    ["1", "2", "3"],
  );
  assert.equal(shape(fromDocker), shape(fromRest));
  assert.match(fromRest.members[0]?.spec ?? "", "scale=3");
  const again = await agent.api("POST", "/v1/volumes", { spec: "name=rset,scale=3" });
  assert.equal(
    [again.status, (again.body as { error: { code: string } }).error.code],
    [409, "volume.exists"],
  );
  for (const set of ["dset", "rset"])
    assert.is((await agent.api("DELETE", `/v1/volume-sets/${set}`)).status, 204);
  assert.is((await agent.api("GET", "/v1/volume-sets/rset")).status, 404);
});

test("scale=2: each new container gets its own member, a third is refused, a freed one is reused", async () => {
  const spec = "name=cache,size=32M,scale=2";
  await ok("/VolumeDriver.Create", { Name: spec, Opts: null });
  assert.is((await inspect("cache.2")).scale, 2, "every member is made at create");

  const a = String((await ok("/VolumeDriver.Mount", { Name: spec, ID: "a" })).Mountpoint);
  const b = String((await ok("/VolumeDriver.Mount", { Name: spec, ID: "b" })).Mountpoint);
  assert.equal([a, b], [join(agent.dir, "mnt", "cache.1"), join(agent.dir, "mnt", "cache.2")]);
  await sh("sh", ["-c", `echo a > ${a}/who && echo b > ${b}/who && sync -f ${a}/who && sync -f ${b}/who`]);
  assert.equal(
    (await ok("/VolumeDriver.Mount", { Name: spec, ID: "a" })).Mountpoint,
    a,
    "a container asking again keeps its member",
  );
  await refused(
    "/VolumeDriver.Mount",
    { Name: spec, ID: "c" },
    /all 2 volumes of "cache" \(scale=2\) are in use: cache\.1 on node1, cache\.2 on node1/,
  );

  await ok("/VolumeDriver.Unmount", { Name: spec, ID: "a" });
  const c = String((await ok("/VolumeDriver.Mount", { Name: "cache", ID: "c" })).Mountpoint);
  assert.is(c, a, "the bare name finds the set; the freed member is reused");
  assert.is((await sh("cat", [`${c}/who`])).trim(), "a");
  const get = (await ok("/VolumeDriver.Get", { Name: spec })).Volume as { Status: { members: unknown[] } };
  assert.is(get.Status.members.length, 2);

  await refused("/VolumeDriver.Remove", { Name: spec }, /set "cache" still has volumes in use/);
  await ok("/VolumeDriver.Unmount", { Name: spec, ID: "b" });
  await ok("/VolumeDriver.Unmount", { Name: spec, ID: "c" });
  await ok("/VolumeDriver.Remove", { Name: spec });
  const names = ((await ok("/VolumeDriver.List")).Volumes as Array<{ Name: string }>).map((v) => v.Name);
  assert.not.ok(
    names.some((n) => n.startsWith("cache")),
    names.join(","),
  );
  await refused(
    "/VolumeDriver.Create",
    { Name: "name=pg,scale=3" },
    /volume "pg" exists as a single volume; scale=3 asks for a set/,
  );
});

test("remove deletes the volume; later calls say it does not exist", async () => {
  await ok("/VolumeDriver.Create", { Name: "name=gone,size=16M" });
  await ok("/VolumeDriver.Remove", { Name: "name=gone,size=16M" });
  for (const path of ["/VolumeDriver.Get", "/VolumeDriver.Path", "/VolumeDriver.Remove"]) {
    await refused(path, { Name: "gone" }, /volume "gone" does not exist/);
  }
  await refused("/VolumeDriver.Mount", { Name: "gone", ID: "x" }, /volume "gone" does not exist/);
  await refused("/VolumeDriver.Unmount", { Name: "gone", ID: "x" }, /volume "gone" does not exist/);
});

test("bad input gets a clear Err and never takes the agent down", async () => {
  const bad = await call("/VolumeDriver.Create", '{"Name": "x",');
  assert.is(bad.status, 400);
  assert.match(String(bad.body.Err), /the body is not JSON/);
  await refused("/VolumeDriver.Create", { Opts: {} }, /Name is required/);
  await refused("/VolumeDriver.Mount", { Name: 42, ID: "x" }, /Name/);
  await refused("/VolumeDriver.Create", { Name: "name=x,colour=blue" }, /colour: unknown key/);
  await refused("/VolumeDriver.Create", { Name: "name=x,size=12X" }, /size: "12X" is not a size/);
  await refused("/VolumeDriver.Create", { Name: "x", Opts: { repl: "5" } }, /repl: must be 1, 2 or 3/);
  const unknown = await call("/VolumeDriver.Snapshot", { Name: "x" });
  assert.is(unknown.status, 404);
  assert.match(String(unknown.body.Err), /no such plugin call/);
  await refused(
    "/VolumeDriver.Unmount",
    { Name: "pg", ID: "nobody" },
    /volume "pg" is not mounted on node1 for container nobody/,
  );
  assert.is(agent.child?.exitCode, null, "the agent is still running");
  assert.equal((await call("/Plugin.Activate")).body, { Implements: ["VolumeDriver"] });
});

test("a busy mount path: a file where the mount point goes, or the volume mounted elsewhere", async () => {
  await ok("/VolumeDriver.Create", { Name: "name=busy,size=16M" });
  await sh("sh", ["-c", `mkdir -p ${agent.dir}/mnt && echo x > ${agent.dir}/mnt/busy`]);
  await refused(
    "/VolumeDriver.Mount",
    { Name: "busy", ID: "c1" },
    /cannot mount volume "busy" on .*\/mnt\/busy: it is not a directory/,
  );
  assert.is((await inspect("busy")).state, "detached", "a failed mount leaves the volume detached");
  await sh("rm", [`${agent.dir}/mnt/busy`]);

  const other = join(agent.dir, "mnt", "elsewhere");
  await agent.json("volume", "mount", "busy", other);
  await refused("/VolumeDriver.Mount", { Name: "busy", ID: "c1" }, /already mounted at .*elsewhere/);
  await refused("/VolumeDriver.Unmount", { Name: "busy", ID: "c1" }, /not mounted on node1 for container c1/);
  assert.ok(await mountedAt(other), "the plugin leaves a mount it did not make alone");
  await agent.json("volume", "unmount", "busy");
  const mounted = await ok("/VolumeDriver.Mount", { Name: "busy", ID: "c1" });
  assert.is(mounted.Mountpoint, join(agent.dir, "mnt", "busy"));
  await ok("/VolumeDriver.Unmount", { Name: "busy", ID: "c1" });
});

test("a socket another agent serves is refused, not stolen; 'none' turns the plugin off", async () => {
  const dir = join(agent.dir, "second");
  const second = await agent.cli(
    "agent",
    ...["--data-dir", dir, "--node-id", "n2", "--api", "127.0.0.1:0", "--mount-dir", join(dir, "mnt")],
    ...["--plugin-socket", socket, "--csi-socket", "none"],
  );
  assert.is(second.code, 1);
  assert.match(second.stderr, /another process \(another agent\?\) serves .*plugin\.sock/);
  assert.equal(
    (await call("/Plugin.Activate")).body,
    { Implements: ["VolumeDriver"] },
    "the socket is still ours",
  );

  const off = await AgentProcess.start(["--plugin-socket", "none", "--csi-socket", "none"]);
  try {
    assert.not.match(await sh("ls", [off.dir]), /\.sock/);
  } finally {
    await off.destroy();
  }
});

test.run();
