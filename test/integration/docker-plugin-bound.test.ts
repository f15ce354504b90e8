import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type DockerPlugin, serveDockerPlugin } from "../../agent/src/api/docker-plugin/index.js";
import type { VolumeService, VolumeView } from "../../agent/src/volumes/index.js";
import { callPlugin } from "../support/docker-plugin.js";

// The plugin answers Docker within its bound even when the volume service never does. A real mount cannot be made
// to hang on purpose here, so a stub volume service stands in for one whose mount is stuck (and is let go later).
let dir = "";
let plugin: DockerPlugin;
let release: (view: VolumeView) => void = () => undefined;
const unmounted: string[] = [];

const view = {
  name: "slow",
  attachedOn: "n1",
  mountPath: "/mnt/slow",
  replicas: [],
} as unknown as VolumeView;
const stuckVolumes = {
  inspect: async () => view,
  list: async () => [view],
  mount: () => new Promise<VolumeView>((resolve) => (release = resolve)),
  unmount: async (name: string) => {
    unmounted.push(name);
    return view;
  },
} as unknown as VolumeService;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-bound-"));
  plugin = await serveDockerPlugin({
    socketPath: join(dir, "plugin.sock"),
    volumes: stuckVolumes,
    nodeId: "n1",
    logger: pino({ level: "silent" }),
    callTimeoutMs: 300,
  });
});
test.after(async () => {
  await plugin?.close();
  await rm(dir, { recursive: true, force: true });
});

// Without a Content-Type, as some dockerd versions send it.
const call = (path: string, body: unknown) => callPlugin(join(dir, "plugin.sock"), path, body, null);

test("a Mount the volume service does not finish answers Docker with an Err, and is undone when it finishes", async () => {
  const answer = await call("/VolumeDriver.Mount", { Name: "slow", ID: "c1" });
  assert.is(answer.status, 500);
  assert.match(String(answer.body.Err), /VolumeDriver\.Mount did not finish within 0\.3 s/);
  assert.equal(unmounted, [], "nothing is undone while the mount is still running");

  release(view);
  // The undo runs in the plugin's queue for this name: a Create of the same name is answered after it.
  assert.is((await call("/VolumeDriver.Create", { Name: "slow" })).status, 200);
  assert.equal(unmounted, ["slow"], "Docker was told the mount failed, so the finished mount is unmounted");
});

test.run();
