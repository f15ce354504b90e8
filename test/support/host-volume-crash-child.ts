// A crashing agent's leftovers: exposes and mounts a volume, writes to it, prints "ready" and serves it until
// killed. Run as `node --import tsx host-volume-crash-child.ts <fuseDir> <target> [<pidFile>]`; with a pid
// file, it first starts a command that outlives it (as a umount or mkfs running when an agent is killed would)
// and writes that command's pid there.
import { access } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { exposeVolume } from "../../agent/src/frontend/index.js";
import { run, runStatus } from "../../agent/src/frontend/run.js";
import { MemoryDevice } from "./memory-device.js";

const [fuseDir, target, pidFile] = process.argv.slice(2);
if (!fuseDir || !target) throw new Error("usage: host-volume-crash-child.ts <fuseDir> <target> [<pidFile>]");
const volume = await exposeVolume({ name: "crashed", device: new MemoryDevice(256 * 1024 * 1024), fuseDir });
await volume.mount(target);
// From a child process: this one serves the file system the write lands on.
await run("test.write", "sh", ["-c", 'echo data > "$1/file" && sync "$1/file"', "sh", target]);
if (pidFile) {
  void runStatus("sh", ["-c", 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 120', "sh", pidFile]);
  while (
    !(await access(pidFile).then(
      () => true,
      () => false,
    ))
  )
    await sleep(20);
}
process.stdout.write("ready\n");
setInterval(() => {}, 60_000);
