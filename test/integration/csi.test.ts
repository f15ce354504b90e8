import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CSI_PROTO } from "../../agent/src/api/csi/proto/csi-proto.js";
import { AgentProcess, sh } from "../support/agent-process.js";
import { CSI_PROTO_FILE, CsiClient, type CsiMessage, type CsiService } from "../support/csi-client.js";

// CSI v1 on a real agent's unix socket, driven by a gRPC client (@grpc/grpc-js) from the vendored csi.proto in the
// order the external-provisioner, the external-attacher and the kubelet call it, then again out of order and
// with fields missing. No Kubernetes runs here: the test plays their part; the volumes and mounts are real.
const ZONE = "topology.holdfast.io/zone";
const MiB = 2 ** 20;

let agent: AgentProcess;
let csi: CsiClient;

test.before(async () => {
  agent = await AgentProcess.start(["--zone", "zone-a"]);
  csi = new CsiClient(join(agent.dir, "csi.sock"));
});
test.after(async () => {
  csi?.close();
  // Bind mounts a failed test left would keep the volume's device busy while the agent stops.
  const pods = (await sh("findmnt", ["-rno", "TARGET"]))
    .split("\n")
    .filter((m) => m.includes(`${agent?.dir}/kubelet/pods/`));
  for (const m of pods) await sh("umount", ["-l", m]).catch(() => undefined);
  await agent?.destroy();
});

const rpc = (service: CsiService, method: string, request: CsiMessage = {}) =>
  csi.call(service, method, request);

/** A call that must fail with `code`, and a message matching `pattern`. */
async function fails(
  service: CsiService,
  method: string,
  request: CsiMessage,
  code: status,
  pattern: RegExp,
): Promise<void> {
  const err = await rpc(service, method, request).then(
    (r): ServiceError => assert.unreachable(`${method} answered ${JSON.stringify(r)}`) as never,
    (e: ServiceError) => e,
  );
  assert.is(status[err.code], status[code], `${method}: ${err.details}`);
  assert.match(err.details, pattern);
}

const mountCap = (fs = "ext4", mode = "SINGLE_NODE_WRITER", flags: string[] = []) => ({
  mount: { fs_type: fs, mount_flags: flags },
  access_mode: { mode },
});
const blockCap = { block: {}, access_mode: { mode: "SINGLE_NODE_WRITER" } };

/** Whether this host lets a process grow a mounted ext4 (CAP_SYS_RESOURCE). */
async function extGrowsOnline(): Promise<boolean> {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(await readFile("/proc/self/status", "utf8"))?.[1];
  return effective !== undefined && (BigInt(`0x${effective}`) & (1n << 24n)) !== 0n;
}

const mounted = async (path: string) => (await sh("findmnt", ["-rno", "TARGET"])).split("\n").includes(path);
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

let volumeId = "";
const staging = () => join(agent.dir, "kubelet/plugins/csi.holdfast.io/pv/pvc-1/globalmount");
const target = (pod: string) => join(agent.dir, `kubelet/pods/${pod}/volumes/kubernetes.io~csi/pvc-1/mount`);

test("the embedded csi.proto the agent loads is the vendored file", async () => {
  assert.is(CSI_PROTO, await readFile(CSI_PROTO_FILE, "utf8"));
});

test("Identity and node info: the plugin's name, capabilities, readiness, this node's id and zone", async () => {
  const info = await rpc("Identity", "GetPluginInfo");
  assert.is(info.name, "csi.holdfast.io");
  const caps = (await rpc("Identity", "GetPluginCapabilities")).capabilities as CsiMessage[];
  const services = caps.filter((c) => c.service).map((c) => c.service.type);
  assert.equal(services.sort(), ["CONTROLLER_SERVICE", "VOLUME_ACCESSIBILITY_CONSTRAINTS"]);
  assert.ok(caps.some((c) => c.volume_expansion?.type === "ONLINE"));
  assert.equal((await rpc("Identity", "Probe")).ready, { value: true });
  const node = await rpc("Node", "NodeGetInfo");
  assert.is(node.node_id, "node1");
  assert.equal(node.accessible_topology.segments, { [ZONE]: "zone-a" });
  const controller = (await rpc("Controller", "ControllerGetCapabilities")).capabilities as CsiMessage[];
  const types = controller.map((c) => c.rpc.type);
  for (const t of [
    "CREATE_DELETE_VOLUME",
    "PUBLISH_UNPUBLISH_VOLUME",
    "EXPAND_VOLUME",
    "LIST_VOLUMES",
    "GET_CAPACITY",
  ]) {
    assert.ok(types.includes(t), t);
  }
  const nodeCaps = (await rpc("Node", "NodeGetCapabilities")).capabilities.map((c: CsiMessage) => c.rpc.type);
  assert.equal(nodeCaps, ["STAGE_UNSTAGE_VOLUME", "EXPAND_VOLUME"]);
});

test("CreateVolume: capacity rounded up to whole blocks, parameters as spec keys, zone topology; retries idempotent", async () => {
  const request = {
    name: "pvc-1",
    capacity_range: { required_bytes: 64 * MiB + 1 },
    volume_capabilities: [mountCap("ext4")],
    parameters: { io_profile: "db", labels: "app:pg", "csi.storage.k8s.io/pvc/name": "data" },
    accessibility_requirements: { preferred: [{ segments: { [ZONE]: "zone-a" } }] },
  };
  const { volume } = await rpc("Controller", "CreateVolume", request);
  volumeId = volume.volume_id;
  assert.match(volumeId, /^[0-9a-f]{16}$/);
  assert.is(volume.capacity_bytes, 64 * MiB + 4096);
  assert.equal(volume.accessible_topology, [{ segments: { [ZONE]: "zone-a" } }]);
  assert.is(volume.volume_context.name, "pvc-1");
  assert.match(volume.volume_context.spec, /io_profile=db/);
  const view = await agent.json<{ ioProfile: string; labels: Record<string, string> }>(
    "volume",
    "inspect",
    "pvc-1",
  );
  assert.is(view.ioProfile, "db");
  assert.equal(view.labels, { app: "pg" });

  const again = await rpc("Controller", "CreateVolume", request);
  assert.is(again.volume.volume_id, volumeId, "a retried CreateVolume answers with the same volume");
  await fails(
    "Controller",
    "CreateVolume",
    { ...request, capacity_range: { required_bytes: 2 ** 30 } },
    status.ALREADY_EXISTS,
    /volume "pvc-1" exists with a different size/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { ...request, parameters: { io_profile: "random" } },
    status.ALREADY_EXISTS,
    /different io_profile/,
  );
});

test("ValidateVolumeCapabilities, ListVolumes with paging, GetCapacity by zone", async () => {
  const ok = await rpc("Controller", "ValidateVolumeCapabilities", {
    volume_id: volumeId,
    volume_capabilities: [mountCap("ext4")],
  });
  assert.ok(ok.confirmed);
  const no = await rpc("Controller", "ValidateVolumeCapabilities", {
    volume_id: volumeId,
    volume_capabilities: [mountCap("xfs")],
  });
  assert.is(no.confirmed, null);
  assert.match(no.message, /fs=ext4, not xfs/);

  const second = await rpc("Controller", "CreateVolume", {
    name: "pvc-2",
    volume_capabilities: [mountCap()],
  });
  assert.is(second.volume.capacity_bytes, 2 ** 30, "no capacity_range: the spec's default size");
  const page1 = await rpc("Controller", "ListVolumes", { max_entries: 1 });
  assert.is(page1.entries.length, 1);
  assert.is(page1.next_token, "1");
  const page2 = await rpc("Controller", "ListVolumes", { max_entries: 5, starting_token: page1.next_token });
  const ids = [...page1.entries, ...page2.entries].map((e: CsiMessage) => e.volume.volume_id);
  assert.ok(ids.includes(volumeId));
  assert.is(page2.next_token, "");
  await fails("Controller", "ListVolumes", { starting_token: "zz" }, status.ABORTED, /starting_token "zz"/);

  const all = await rpc("Controller", "GetCapacity", { volume_capabilities: [mountCap()] });
  assert.ok(all.available_capacity > 0);
  const nowhere = await rpc("Controller", "GetCapacity", {
    accessible_topology: { segments: { [ZONE]: "zone-z" } },
  });
  assert.is(nowhere.available_capacity, 0);
  await fails(
    "Controller",
    "CreateVolume",
    {
      name: "pvc-nowhere",
      volume_capabilities: [mountCap()],
      accessibility_requirements: { requisite: [{ segments: { [ZONE]: "zone-z" } }] },
    },
    status.RESOURCE_EXHAUSTED,
    /zone/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    {
      name: "pvc-pinned",
      volume_capabilities: [mountCap()],
      parameters: { zones: "zone-a" },
      accessibility_requirements: { requisite: [{ segments: { [ZONE]: "zone-z" } }] },
    },
    status.RESOURCE_EXHAUSTED,
    /could not place volume "pvc-pinned" in zones zone-z \(it landed in zone-a\)/,
  );
  const listed = (await rpc("Controller", "ListVolumes")).entries as CsiMessage[];
  assert.not.ok(
    listed.some((e) => e.volume.volume_context.name === "pvc-pinned"),
    "the misplaced volume is gone",
  );
  await rpc("Controller", "DeleteVolume", { volume_id: second.volume.volume_id });
});

test("the attacher and kubelet lifecycle: publish, stage, publish to pods, write, expand, then all undone", async () => {
  const publish = await rpc("Controller", "ControllerPublishVolume", {
    volume_id: volumeId,
    node_id: "node1",
    volume_capability: mountCap(),
  });
  assert.equal(publish.publish_context, { node: "node1" });
  await rpc("Controller", "ControllerPublishVolume", {
    volume_id: volumeId,
    node_id: "node1",
    volume_capability: mountCap(),
  });

  const stage = { volume_id: volumeId, staging_target_path: staging(), volume_capability: mountCap() };
  await fails(
    "Node",
    "NodePublishVolume",
    { ...stage, target_path: target("pod-a") },
    status.FAILED_PRECONDITION,
    /not staged .*NodeStageVolume first/,
  );
  await rpc("Node", "NodeStageVolume", stage);
  assert.ok(await mounted(staging()));
  await rpc("Node", "NodeStageVolume", stage);
  await fails(
    "Node",
    "NodeStageVolume",
    { ...stage, staging_target_path: join(agent.dir, "other-staging") },
    status.ALREADY_EXISTS,
    /is staged at .*globalmount/,
  );

  await rpc("Node", "NodePublishVolume", { ...stage, target_path: target("pod-a") });
  await rpc("Node", "NodePublishVolume", { ...stage, target_path: target("pod-a") });
  await rpc("Node", "NodePublishVolume", { ...stage, target_path: target("pod-b"), readonly: true });
  await sh("sh", ["-c", `echo hello > ${target("pod-a")}/greeting && sync -f ${target("pod-a")}/greeting`]);
  assert.is((await readFile(join(staging(), "greeting"), "utf8")).trim(), "hello");
  assert.is((await readFile(join(target("pod-b"), "greeting"), "utf8")).trim(), "hello");
  const write = await sh("sh", ["-c", `echo x > ${target("pod-b")}/nope`]).then(
    () => "",
    (e: Error) => e.message,
  );
  assert.match(write, /Read-only file system/);
  await fails(
    "Node",
    "NodePublishVolume",
    { ...stage, target_path: target("pod-a"), readonly: true },
    status.ALREADY_EXISTS,
    /published at .*read-write already/,
  );

  await fails("Controller", "DeleteVolume", { volume_id: volumeId }, status.FAILED_PRECONDITION, /attached/);
  await fails(
    "Node",
    "NodeUnstageVolume",
    { volume_id: volumeId, staging_target_path: staging() },
    status.FAILED_PRECONDITION,
    /still published at .*pod-a.*NodeUnpublishVolume first/,
  );

  const grow = { volume_id: volumeId, capacity_range: { required_bytes: 128 * MiB } };
  if (await extGrowsOnline()) {
    assert.equal(await rpc("Controller", "ControllerExpandVolume", grow), {
      capacity_bytes: 128 * MiB,
      node_expansion_required: false,
    });
  } else {
    // Without CAP_SYS_RESOURCE (this machine kind) ext4 grows only unmounted, which would pull it from the pods.
    await fails("Controller", "ControllerExpandVolume", grow, status.FAILED_PRECONDITION, /CAP_SYS_RESOURCE/);
    await fails(
      "Node",
      "NodeExpandVolume",
      { ...grow, volume_path: target("pod-a") },
      status.FAILED_PRECONDITION,
      /in use at .*pod-a/,
    );
  }

  for (const pod of ["pod-a", "pod-b"]) {
    await rpc("Node", "NodeUnpublishVolume", { volume_id: volumeId, target_path: target(pod) });
    await rpc("Node", "NodeUnpublishVolume", { volume_id: volumeId, target_path: target(pod) });
    assert.not.ok(await exists(target(pod)), "the target directory is removed");
  }

  // Staged and used by no pod, it grows on any host: the device, then the file system.
  const expanded = await rpc("Controller", "ControllerExpandVolume", grow);
  assert.equal(expanded, { capacity_bytes: 128 * MiB, node_expansion_required: false });
  const nodeExpand = await rpc("Node", "NodeExpandVolume", { ...grow, volume_path: staging() });
  assert.is(nodeExpand.capacity_bytes, 128 * MiB);
  const size = Number((await sh("df", ["--output=size", "-B1M", staging()])).split("\n")[1]);
  assert.ok(size > 100, `the file system grew: ${size} MiB`);
  assert.is((await readFile(join(staging(), "greeting"), "utf8")).trim(), "hello");

  await rpc("Node", "NodeUnstageVolume", { volume_id: volumeId, staging_target_path: staging() });
  assert.not.ok(await mounted(staging()));
  await rpc("Node", "NodeUnstageVolume", { volume_id: volumeId, staging_target_path: staging() });
  await rpc("Controller", "ControllerUnpublishVolume", { volume_id: volumeId, node_id: "node1" });
  await rpc("Controller", "ControllerUnpublishVolume", { volume_id: volumeId, node_id: "node1" });

  // Staged again, the data is there.
  await rpc("Node", "NodeStageVolume", stage);
  assert.is((await readFile(join(staging(), "greeting"), "utf8")).trim(), "hello");
  await rpc("Node", "NodeUnstageVolume", { volume_id: volumeId, staging_target_path: staging() });

  await rpc("Controller", "DeleteVolume", { volume_id: volumeId });
  await rpc("Controller", "DeleteVolume", { volume_id: volumeId });
  await fails("Node", "NodeStageVolume", stage, status.NOT_FOUND, /does not exist/);
  await fails(
    "Controller",
    "ControllerPublishVolume",
    { volume_id: volumeId, node_id: "node1", volume_capability: mountCap() },
    status.NOT_FOUND,
    /does not exist/,
  );
});

test("scale=3: CreateVolume makes the set NAME.1 to NAME.3 that REST makes; each staging takes its own member", async () => {
  const request = {
    name: "cache",
    capacity_range: { required_bytes: 32 * MiB },
    volume_capabilities: [mountCap("ext4", "MULTI_NODE_MULTI_WRITER")],
    parameters: { scale: "3", io_profile: "db" },
  };
  const { volume } = await rpc("Controller", "CreateVolume", request);
  assert.is(volume.volume_id, "set:cache");
  assert.is(volume.capacity_bytes, 32 * MiB);
  assert.equal(volume.volume_context, { name: "cache", scale: "3", members: "cache.1,cache.2,cache.3" });
  const again = await rpc("Controller", "CreateVolume", request);
  assert.is(again.volume.volume_id, "set:cache", "a retried CreateVolume answers with the same set");

  // The same keys through REST make the same members, spec for spec, but for the name.
  const rest = await agent.api("POST", "/v1/volumes", {
    spec: "name=rest,size=32M,scale=3,io_profile=db,fs=ext4",
  });
  assert.is(rest.status, 201, JSON.stringify(rest.body));
  const { body: set } = await agent.api("GET", "/v1/volume-sets/cache");
  type Member = { name: string; spec: string };
  const specs = (members: Member[], name: string) =>
    members.map((m) => m.spec.replace(`name=${name}.`, "name=N."));
  assert.equal(
    set.members.map((m: Member) => m.name),
    ["cache.1", "cache.2", "cache.3"],
  );
  assert.equal(specs(set.members, "cache"), specs(rest.body.members, "rest"));

  const listed = await rpc("Controller", "ListVolumes", {});
  const ids = listed.entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id);
  assert.ok(ids.includes("set:cache") && ids.includes("set:rest"), `ListVolumes lists each set once: ${ids}`);
  const memberIds = set.members.map((m: { id: string }) => m.id);
  assert.not.ok(
    ids.some((i: string) => memberIds.includes(i)),
    "a set's members are not listed on their own",
  );
  const validated = await rpc("Controller", "ValidateVolumeCapabilities", {
    volume_id: "set:cache",
    volume_capabilities: [mountCap("ext4", "MULTI_NODE_MULTI_WRITER")],
  });
  assert.ok(validated.confirmed, validated.message);
  await rpc("Controller", "ControllerPublishVolume", {
    volume_id: "set:cache",
    node_id: "node1",
    volume_capability: mountCap("ext4", "MULTI_NODE_MULTI_WRITER"),
  });

  // One node stages the set once; a second staging path stands in for a second node (one agent runs here).
  const cap = mountCap("ext4", "MULTI_NODE_MULTI_WRITER");
  const stagingOf = (n: number) =>
    join(agent.dir, `kubelet/plugins/csi.holdfast.io/pv/cache-${n}/globalmount`);
  const stage = (n: number) => ({
    volume_id: "set:cache",
    staging_target_path: stagingOf(n),
    volume_capability: cap,
  });
  await rpc("Node", "NodeStageVolume", stage(1));
  await rpc("Node", "NodeStageVolume", stage(1));
  await rpc("Node", "NodeStageVolume", stage(2));
  const { body: staged } = await agent.api("GET", "/v1/volume-sets/cache");
  const where = (m: { name: string; mountPath: string | null }) => `${m.name}@${m.mountPath}`;
  const mountedMembers = staged.members.filter((m: { mountPath: string | null }) => m.mountPath);
  assert.equal(
    mountedMembers.map(where),
    [`cache.1@${stagingOf(1)}`, `cache.2@${stagingOf(2)}`],
    "each staging took its own member, and staging again kept it",
  );
  const pod = join(agent.dir, "kubelet/pods/cache-pod/volumes/kubernetes.io~csi/cache/mount");
  await rpc("Node", "NodePublishVolume", { ...stage(2), target_path: pod });
  await sh("sh", ["-c", `echo two > ${pod}/which && sync -f ${pod}/which`]);
  assert.is((await readFile(join(stagingOf(2), "which"), "utf8")).trim(), "two");
  assert.not.ok(await exists(join(stagingOf(1), "which")), "the members are separate volumes");
  await fails("Node", "NodeUnstageVolume", stage(2), status.FAILED_PRECONDITION, /still published/);
  await fails(
    "Controller",
    "DeleteVolume",
    { volume_id: "set:cache" },
    status.FAILED_PRECONDITION,
    /set "cache" has volumes in use: cache.1 on node1, cache.2 on node1/,
  );
  await rpc("Node", "NodeUnpublishVolume", { volume_id: "set:cache", target_path: pod });
  await rpc("Node", "NodeUnpublishVolume", { volume_id: "set:cache", target_path: pod });
  for (const n of [1, 2]) await rpc("Node", "NodeUnstageVolume", stage(n));
  assert.not.ok(await mounted(stagingOf(1)));
  await rpc("Controller", "DeleteVolume", { volume_id: "set:cache" });
  await rpc("Controller", "DeleteVolume", { volume_id: "set:cache" });
  assert.is((await agent.api("GET", "/v1/volume-sets/cache")).status, 404);
  assert.is((await agent.api("DELETE", "/v1/volume-sets/rest")).status, 204);
});

test("missing fields and what Holdfast cannot do: clear codes, and the agent keeps serving", async () => {
  const cap = mountCap();
  await fails(
    "Controller",
    "CreateVolume",
    { volume_capabilities: [cap] },
    status.INVALID_ARGUMENT,
    /name is required/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v" },
    status.INVALID_ARGUMENT,
    /volume_capabilities is required/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v", volume_capabilities: [mountCap("ext4", "MULTI_NODE_MULTI_WRITER")] },
    status.INVALID_ARGUMENT,
    /MULTI_NODE_MULTI_WRITER is not supported/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v", volume_capabilities: [blockCap] },
    status.INVALID_ARGUMENT,
    /raw block/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v", volume_capabilities: [mountCap("ext4", "SINGLE_NODE_WRITER", ["noatime"])] },
    status.INVALID_ARGUMENT,
    /mount_flags are not supported/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    {
      name: "v",
      volume_capabilities: [cap],
      capacity_range: { required_bytes: 10 * MiB, limit_bytes: 5 * MiB },
    },
    status.OUT_OF_RANGE,
    /capacity_range/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v", volume_capabilities: [cap], parameters: { colour: "blue" } },
    status.INVALID_ARGUMENT,
    /colour: unknown key/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "v", volume_capabilities: [cap], parameters: { size: "1G" } },
    status.INVALID_ARGUMENT,
    /"size" comes from the request/,
  );
  await fails(
    "Controller",
    "CreateVolume",
    { name: "bad/name", volume_capabilities: [cap] },
    status.INVALID_ARGUMENT,
    /name/,
  );
  await fails("Controller", "DeleteVolume", {}, status.INVALID_ARGUMENT, /volume_id is required/);
  await fails(
    "Controller",
    "ControllerPublishVolume",
    { volume_id: "x", volume_capability: cap },
    status.INVALID_ARGUMENT,
    /node_id is required/,
  );
  await fails(
    "Controller",
    "ControllerPublishVolume",
    { volume_id: "x", node_id: "node1" },
    status.INVALID_ARGUMENT,
    /volume_capability is required/,
  );
  await fails(
    "Controller",
    "ControllerExpandVolume",
    { volume_id: "x" },
    status.INVALID_ARGUMENT,
    /capacity_range is required/,
  );
  await fails(
    "Controller",
    "ValidateVolumeCapabilities",
    { volume_id: "nope", volume_capabilities: [cap] },
    status.NOT_FOUND,
    /nope/,
  );
  await fails(
    "Node",
    "NodeStageVolume",
    { volume_id: "x", volume_capability: cap },
    status.INVALID_ARGUMENT,
    /staging_target_path is required/,
  );
  await fails(
    "Node",
    "NodeStageVolume",
    { volume_id: "x", staging_target_path: "/tmp/s" },
    status.INVALID_ARGUMENT,
    /volume_capability is required/,
  );
  await fails(
    "Node",
    "NodePublishVolume",
    { volume_id: "x", staging_target_path: "/tmp/s", volume_capability: cap },
    status.INVALID_ARGUMENT,
    /target_path is required/,
  );
  await fails(
    "Node",
    "NodeUnstageVolume",
    { volume_id: "x" },
    status.INVALID_ARGUMENT,
    /staging_target_path is required/,
  );
  await fails(
    "Node",
    "NodeUnpublishVolume",
    { target_path: "/tmp/t" },
    status.INVALID_ARGUMENT,
    /volume_id is required/,
  );
  await fails(
    "Node",
    "NodeExpandVolume",
    { volume_id: "x" },
    status.INVALID_ARGUMENT,
    /volume_path is required/,
  );
  await fails(
    "Controller",
    "CreateSnapshot",
    { source_volume_id: "x", name: "s" },
    status.UNIMPLEMENTED,
    /./,
  );
  assert.is(agent.child?.exitCode, null, "the agent is still running");
  assert.equal((await rpc("Identity", "Probe")).ready, { value: true });
});

test.run();
