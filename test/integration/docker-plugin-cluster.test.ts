import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { HOLDFAST, sh } from "../support/agent-process.js";
import { CsiClient, type CsiMessage } from "../support/csi-client.js";
import { waitFor } from "../support/dev-cluster.js";
import { callPlugin, type PluginAnswer } from "../support/docker-plugin.js";

// The Docker volume plugin (and CSI) across a real three-node dev cluster (etcd and three agents on 127.0.20.x),
// each node serving its own sockets as dockerd or the kubelet on that host would call them.
const NET = "127.0.20";
let dir = "";
let nodes: Array<{ id: string; api: string; plugin: string; csi: string }> = [];
let token = "";
let ca = "";

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-dpc-"));
  const up = JSON.parse(
    await sh(HOLDFAST, [
      "dev",
      "up",
      "--dir",
      dir,
      "--nodes",
      "3",
      "--net",
      NET,
      "--lease-ttl",
      "2",
      "--output",
      "json",
    ]),
  );
  nodes = up.nodes;
  token = up.token;
  ca = up.ca;
});
test.after(async () => {
  for (const c of csiClients.values()) c.close();
  if (dir) await sh(HOLDFAST, ["dev", "down", "--dir", dir]).catch(() => undefined);
});

function call(node: number, path: string, body: unknown): Promise<PluginAnswer> {
  return callPlugin(nodes[node]?.plugin as string, path, body);
}

async function ok(node: number, path: string, body: unknown): Promise<PluginAnswer["body"]> {
  const r = await call(node, path, body);
  assert.ok(
    !r.body.Err && r.status === 200,
    `node${node + 1} ${path} ${JSON.stringify(body)}: ${r.body.Err}`,
  );
  return r.body;
}

const mount = async (node: number, name: string, id: string) =>
  String((await ok(node, "/VolumeDriver.Mount", { Name: name, ID: id })).Mountpoint);
const unmount = (node: number, name: string, id: string) =>
  ok(node, "/VolumeDriver.Unmount", { Name: name, ID: id });
const mounted = async (path: string) => (await sh("findmnt", ["-rno", "TARGET"])).split("\n").includes(path);

async function nodeState(id: string): Promise<string> {
  const out = await sh("sh", [
    "-c",
    `HOLDFAST_API=${nodes[0]?.api} HOLDFAST_TOKEN=${token} HOLDFAST_CA=${ca} ${HOLDFAST} node list --output json`,
  ]);
  return (JSON.parse(out) as Array<{ id: string; state: string }>).find((n) => n.id === id)?.state ?? "";
}

const csiClients = new Map<number, CsiClient>();

/** A CSI call on node `node`'s socket. */
function csi(
  node: number,
  service: "Controller" | "Node",
  method: string,
  request: CsiMessage = {},
): Promise<CsiMessage> {
  let client = csiClients.get(node);
  if (!client) {
    client = new CsiClient(nodes[node]?.csi ?? "");
    csiClients.set(node, client);
  }
  return client.call(service, method, request);
}

test("dev up lists each node's own plugin and CSI sockets", () => {
  assert.is(nodes.length, 3);
  for (const n of nodes) {
    assert.is(n.plugin, join(dir, n.id, "plugin.sock"));
    assert.is(n.csi, join(dir, n.id, "csi.sock"));
  }
});

test("create by spec on one node, mount there, then on another node: the files follow the volume", async () => {
  const spec = "name=moves,size=64M,repl=2";
  await ok(0, "/VolumeDriver.Create", { Name: spec, Opts: null });
  const one = await mount(0, spec, "c1");
  assert.is(one, join(dir, "node1", "mounts", "moves"));
  await sh("sh", ["-c", `echo hello > ${one}/note && sync -f ${one}/note`]);
  await unmount(0, spec, "c1");
  assert.not.ok(await mounted(one));

  const two = await mount(1, spec, "c2");
  assert.is(two, join(dir, "node2", "mounts", "moves"));
  assert.is((await readFile(join(two, "note"), "utf8")).trim(), "hello");

  // Two containers on node2 share the mount; the last one's unmount unmounts.
  assert.is(await mount(1, "moves", "c3"), two);
  await unmount(1, spec, "c2");
  assert.ok(await mounted(two));
  const busy = await call(2, "/VolumeDriver.Mount", { Name: spec, ID: "c4" });
  assert.match(
    String(busy.body.Err),
    /attached on (node )?node2/,
    "node2 is alive: node3 is told where it is",
  );
  await unmount(1, spec, "c3");
  assert.not.ok(await mounted(two));
});

test("failover: the volume attached on a killed node is taken over by a Mount on another node", async () => {
  const spec = "name=moves,size=64M,repl=2";
  const two = await mount(1, spec, "c5");
  await sh("sh", ["-c", `echo again > ${two}/second && sync -f ${two}/second`]);
  await sh(HOLDFAST, ["dev", "stop", "--dir", dir, "--node", "node2", "--signal", "SIGKILL"]);
  await waitFor("node2 to count as down", async () =>
    (await nodeState("node2")) === "down" ? true : undefined,
  );
  const three = await mount(2, spec, "c6");
  assert.is((await readFile(join(three, "second"), "utf8")).trim(), "again");
  await unmount(2, spec, "c6");
  await sh(HOLDFAST, ["dev", "start", "--dir", dir, "--node", "node2"]);
});

test("scale=3 mounted for three containers on three nodes: three volumes; a fourth Mount is refused", async () => {
  const spec = "name=cache,size=32M,scale=3";
  await ok(0, "/VolumeDriver.Create", { Name: spec, Opts: null });
  const paths = [await mount(0, spec, "a"), await mount(1, spec, "b"), await mount(2, spec, "c")];
  const names = paths.map((p) => p.split("/").at(-1));
  assert.equal([...names].sort(), ["cache.1", "cache.2", "cache.3"]);
  for (const [i, p] of paths.entries()) {
    await sh("sh", ["-c", `echo ${i} > ${p}/me && sync -f ${p}/me`]);
  }
  const fourth = await call(0, "/VolumeDriver.Mount", { Name: spec, ID: "d" });
  assert.match(String(fourth.body.Err), /all 3 volumes of "cache" \(scale=3\) are in use/);

  await unmount(1, spec, "b");
  const again = await mount(0, spec, "d");
  assert.is(again.split("/").at(-1), names[1], "the freed member moves to the node that asks");
  assert.is((await readFile(join(again, "me"), "utf8")).trim(), "1");
  for (const [node, id] of [
    [0, "a"],
    [2, "c"],
    [0, "d"],
  ] as const) {
    await unmount(node, spec, id);
  }
  await ok(2, "/VolumeDriver.Remove", { Name: spec });
  const list = (await ok(1, "/VolumeDriver.List", {})).Volumes as Array<{ Name: string }>;
  assert.not.ok(list.some((v) => v.Name.startsWith("cache")));
});

test("CSI across nodes: a volume staged on one node is refused to another until unstaged, then moves", async () => {
  const cap = { mount: { fs_type: "ext4" }, access_mode: { mode: "SINGLE_NODE_WRITER" } };
  const zones = await Promise.all([0, 1].map((n) => csi(n, "Node", "NodeGetInfo")));
  assert.equal(
    zones.map((z) => [z.node_id, z.accessible_topology.segments["topology.holdfast.io/zone"]]),
    [
      ["node1", "zone-a"],
      ["node2", "zone-b"],
    ],
  );
  const { volume } = await csi(0, "Controller", "CreateVolume", {
    name: "pvc-moving",
    capacity_range: { required_bytes: 64 * 2 ** 20 },
    volume_capabilities: [cap],
    parameters: { repl: "2" },
  });
  assert.is(volume.accessible_topology.length, 2, "two replicas in two zones");
  const stage = (node: number) => ({
    volume_id: volume.volume_id,
    staging_target_path: join(dir, `node${node + 1}`, "kubelet", "pvc-moving"),
    volume_capability: cap,
  });
  await csi(0, "Controller", "ControllerPublishVolume", { ...stage(0), node_id: "node1" });
  await csi(0, "Node", "NodeStageVolume", stage(0));
  await sh("sh", [
    "-c",
    `echo moved > ${stage(0).staging_target_path}/f && sync -f ${stage(0).staging_target_path}/f`,
  ]);
  const refused = await csi(0, "Controller", "ControllerPublishVolume", {
    ...stage(1),
    node_id: "node2",
  }).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  assert.is(refused?.code, status.FAILED_PRECONDITION);
  assert.match(String(refused?.details), /attached on node node1, which is up/);

  await csi(0, "Node", "NodeUnstageVolume", stage(0));
  await csi(0, "Controller", "ControllerUnpublishVolume", { volume_id: volume.volume_id, node_id: "node1" });
  await csi(0, "Controller", "ControllerPublishVolume", { ...stage(1), node_id: "node2" });
  await csi(1, "Node", "NodeStageVolume", stage(1));
  assert.is((await readFile(join(stage(1).staging_target_path, "f"), "utf8")).trim(), "moved");

  // Attached on node2, the controller on node1 leaves the growing to node2's NodeExpandVolume.
  const grow = { volume_id: volume.volume_id, capacity_range: { required_bytes: 128 * 2 ** 20 } };
  assert.equal(await csi(0, "Controller", "ControllerExpandVolume", grow), {
    capacity_bytes: 128 * 2 ** 20,
    node_expansion_required: true,
  });
  await csi(1, "Node", "NodeExpandVolume", { ...grow, volume_path: stage(1).staging_target_path });
  const size = Number(
    (await sh("df", ["--output=size", "-B1M", stage(1).staging_target_path])).split("\n")[1],
  );
  assert.ok(size > 100, `grew to ${size} MiB`);

  await csi(1, "Node", "NodeUnstageVolume", stage(1));
  await csi(0, "Controller", "ControllerUnpublishVolume", { volume_id: volume.volume_id, node_id: "node2" });
  await csi(0, "Controller", "DeleteVolume", { volume_id: volume.volume_id });
});

test.run();
