// A crashing agent's leftovers: exposes and mounts a volume, writes to it, prints "ready" and serves it until
// killed. Run as `node --import tsx host-volume-crash-child.ts <fuseDir> <target>`.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { exposeVolume } from "../../agent/src/frontend/index.js";
import { MemoryDevice } from "./memory-device.js";

const [fuseDir, target] = process.argv.slice(2);
if (!fuseDir || !target) throw new Error("usage: host-volume-crash-child.ts <fuseDir> <target>");
const volume = await exposeVolume({ name: "crashed", device: new MemoryDevice(256 * 1024 * 1024), fuseDir });
await volume.mount(target);
// From a child process: this one serves the file system the write lands on.
await promisify(execFile)("sh", ["-c", 'echo data > "$1/file" && sync "$1/file"', "sh", target]);
process.stdout.write("ready\n");
setInterval(() => {}, 60_000);
