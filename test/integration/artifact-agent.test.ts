import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type AgentArtifact, agentArtifact } from "../support/agent-artifact.js";
import { freePort, sh, stopChild } from "../support/agent-process.js";

const exec = promisify(execFile);

// The artifact is unpacked under the system temp dir, away from the repository, so nothing it loads can come
// from the checkout's node_modules.
let artifact: AgentArtifact;
let dir = "";
let bin = "";
let agent: ChildProcess | undefined;

test.before(async () => {
  artifact = await agentArtifact();
  dir = await mkdtemp(join(tmpdir(), "hf-artifact-"));
  await sh("tar", ["-xzf", artifact.path, "-C", dir]);
  bin = join(dir, artifact.topDir, "bin/holdfast");
});

test.after(async () => {
  await stopChild(agent, "SIGTERM");
  await rm(dir, { recursive: true, force: true });
});

test("the checksum file matches the tarball", async () => {
  const sum = createHash("sha256")
    .update(await readFile(artifact.path))
    .digest("hex");
  assert.is(artifact.sha256, sum);
});

test("holdfast --version from the unpacked artifact prints the package version", async () => {
  const { stdout } = await exec(bin, ["--version"], { cwd: dir });
  assert.is(stdout.trim(), artifact.version);
});

test("the unpacked artifact runs an agent that creates and serves a volume", async () => {
  const port = await freePort();
  const data = join(dir, "data");
  agent = spawn(bin, ["agent", "--data-dir", data, "--node-id", "a1", "--api", `127.0.0.1:${port}`], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  agent.stdout?.on("data", (d) => {
    log += d;
  });
  agent.stderr?.on("data", (d) => {
    log += d;
  });
  for (let i = 0; i < 200 && !log.includes('"agent ready"'); i++) {
    if (agent.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(log.includes('"agent ready"'), `agent did not start:\n${log}`);
  const env = {
    ...process.env,
    HOLDFAST_API: `http://127.0.0.1:${port}`,
    HOLDFAST_TOKEN: (await readFile(join(data, "token"), "utf8")).trim(),
  };
  await exec(bin, ["volume", "create", "name=art1,size=64M,labels=from:artifact"], { env, cwd: dir });
  const { stdout } = await exec(bin, ["volume", "inspect", "art1", "--output", "json"], { env, cwd: dir });
  const view = JSON.parse(stdout) as { name: string; size: number; labels: Record<string, string> };
  assert.is(view.name, "art1");
  assert.is(view.size, 64 * 2 ** 20);
  assert.equal(view.labels, { from: "artifact" });
});

test("without its node_modules the artifact fails, so the run above used the artifact's own packages", async () => {
  const modules = join(dir, artifact.topDir, "node_modules");
  await rename(modules, `${modules}.away`);
  try {
    const err = await exec(bin, ["--version"], { cwd: dir }).then(
      () => undefined,
      (e: { stderr: string }) => e,
    );
    assert.ok(err, "the artifact ran without its node_modules");
    assert.match(err.stderr, /Cannot find package '(etcd3|fuse-native)'/);
  } finally {
    await rename(`${modules}.away`, modules);
  }
});

test.run();
