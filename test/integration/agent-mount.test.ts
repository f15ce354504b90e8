import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, sh } from "../support/agent-process.js";

// A real agent mounting real file systems: FUSE-backed file, loop device, mkfs.ext4, mount. The checks run
// in child processes (sha256sum, df, findmnt), as a user of the mount would.
let agent: AgentProcess;

test.before(async () => {
  agent = await AgentProcess.start();
});
test.after(async () => {
  await agent?.destroy();
});

interface Mounted {
  mountPath: string;
  devicePath: string;
  size: number;
  replicas: Array<{ bytesOnDisk: number }>;
}

const MiB = 1024 * 1024;

async function writeFiles(dir: string): Promise<string> {
  await sh("sh", [
    "-c",
    `mkdir -p ${dir}/app && head -c 3145728 /dev/urandom > ${dir}/app/blob && echo hello > ${dir}/app/note && sync -f ${dir}/app/blob`,
  ]);
  return checksums(dir);
}

const checksums = (dir: string) => sh("sh", ["-c", `cd ${dir}/app && sha256sum blob note`]);

/** Loop devices and FUSE mounts this agent holds, as the kernel sees them. */
async function leftovers(): Promise<string[]> {
  const loops = JSON.parse((await sh("losetup", ["-J", "-l"])) || '{"loopdevices":[]}') as {
    loopdevices: Array<{ "back-file": string | null }>;
  };
  const mounts = (await sh("cat", ["/proc/self/mountinfo"])).split("\n");
  return [
    ...loops.loopdevices.map((l) => l["back-file"] ?? "").filter((f) => f.includes(agent.dir)),
    ...mounts.filter((m) => m.includes(agent.dir)),
  ];
}

test("volume mount gives an ext4 file system; files survive unmount, remount and restarts", async () => {
  await agent.json("volume", "create", "name=files,size=256M");
  const target = join(agent.dir, "mnt", "files");
  const mounted = await agent.json<Mounted>("volume", "mount", "files", target);
  assert.is(mounted.mountPath, target);
  assert.match(mounted.devicePath, /^\/dev\/loop\d+$/);
  assert.is((await sh("findmnt", ["-no", "FSTYPE", target])).trim(), "ext4");
  const sums = await writeFiles(target);

  await agent.json("volume", "unmount", "files");
  assert.equal(await leftovers(), []);
  await agent.json("volume", "mount", "files", target);
  assert.is(await checksums(target), sums);

  await agent.stop("SIGTERM");
  assert.equal(await leftovers(), [], "a clean stop leaves no mount or loop device");
  await agent.restart();
  await agent.json("volume", "mount", "files", target);
  assert.is(await checksums(target), sums);

  await agent.stop("SIGKILL");
  await agent.restart();
  const again = await agent.json<Mounted>("volume", "mount", "files", target);
  assert.is(again.mountPath, target);
  assert.is(await checksums(target), sums);
  await agent.json("volume", "unmount", "files");
  assert.equal(await leftovers(), []);
});

test("a 1 TiB volume costs under 16 MiB on disk before any write", async () => {
  const v = await agent.json<Mounted & { id: string }>("volume", "create", "name=huge,size=1T");
  assert.is(v.size, 1024 ** 4);
  const onDisk = v.replicas[0]?.bytesOnDisk ?? Number.POSITIVE_INFINITY;
  assert.ok(onDisk < 16 * MiB, `on disk: ${onDisk}`);
  const du = Number(
    (await sh("du", ["-sb", "--apparent-size", join(agent.dir, "data", "pool")])).split("\t")[0],
  );
  const real = Number(
    (await sh("du", ["-sB1", join(agent.dir, "data", "pool", "replicas", v.id)])).split("\t")[0],
  );
  assert.ok(du >= 1024 ** 4, `apparent size ${du}`);
  assert.ok(real < 16 * MiB, `the replica uses ${real} bytes`);
  await agent.json("volume", "delete", "huge");
});

test("resize grows a mounted volume's file system; shrinking is refused", async () => {
  await agent.json("volume", "create", "name=growing,size=128M");
  const target = join(agent.dir, "mnt", "growing");
  await agent.json("volume", "mount", "growing", target);
  const sizeOf = async () => Number((await sh("df", ["-B1", "--output=size", target])).split("\n")[1]);
  const before = await sizeOf();
  const resized = await agent.json<Mounted>("volume", "resize", "growing", "--size", "512M");
  assert.is(resized.size, 512 * MiB);
  const after = await sizeOf();
  assert.ok(after > before * 3, `df size ${before} -> ${after}`);
  const shrink = await agent.cli("volume", "resize", "growing", "--size", "64M");
  assert.is(shrink.code, 2);
  assert.match(shrink.stderr, /size: cannot shrink/);
  await agent.json("volume", "unmount", "growing");
  await agent.json("volume", "delete", "growing");
});

test("a mounted volume cannot be deleted or detached; the message says why", async () => {
  const target = join(agent.dir, "mnt", "files");
  await agent.json("volume", "mount", "files", target);
  const del = await agent.cli("volume", "delete", "files");
  assert.is(del.code, 1);
  assert.match(del.stderr, /attached on node node1: detach it first/);
  const detach = await agent.cli("volume", "detach", "files");
  assert.is(detach.code, 1);
  assert.match(detach.stderr, /mounted at .*: unmount it first/);
  await agent.json("volume", "unmount", "files");
  await agent.json("volume", "delete", "files");
  assert.equal(await leftovers(), []);
});

test.run();
