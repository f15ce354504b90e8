/**
 * The path for hosts whose kernel has the nbd module: the agent's NBD server (the nbd/ frontend) listens on a
 * Unix socket and `nbd-client` hands that connection to /dev/nbdN, with no FUSE file or loop device between.
 * The machine this was written on has no nbd module, so no test runs it: it is kept small on purpose.
 */
import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { OperationError } from "../errors.js";
import { commandError, run, runStatus } from "./run.js";

/** Whether this host can use the kernel's NBD client: /dev/nbd0 exists and nbd-client is on PATH. */
export async function kernelNbdAvailable(): Promise<boolean> {
  if (!(await exists("/dev/nbd0"))) return false;
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const dir of dirs) if (await exists(join(dir, "nbd-client"), constants.X_OK)) return true;
  return false;
}

/** Connects the first free /dev/nbdN to the NBD server on `socket`; returns the device's path. */
export async function connectKernelNbd(socket: string, blockSize: number): Promise<string> {
  for (let i = 0; await exists(`/dev/nbd${i}`); i++) {
    // A connected device has a pid file: the process that owns the connection.
    if (await exists(`/sys/block/nbd${i}/pid`)) continue;
    const dev = `/dev/nbd${i}`;
    const args = ["-unix", socket, dev, "-block-size", String(blockSize)];
    const result = await runStatus("nbd-client", args);
    if (result.code === 0) return dev;
    // Another process took the device between the look and the connect: try the next one.
    if (!(await exists(`/sys/block/nbd${i}/pid`)))
      throw commandError("volume.nbd", "nbd-client", args, result);
  }
  throw new OperationError("volume.nbd", "every /dev/nbdN device is in use");
}

export async function disconnectKernelNbd(dev: string): Promise<void> {
  await run("volume.nbd", "nbd-client", ["-d", dev]);
}

function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}
