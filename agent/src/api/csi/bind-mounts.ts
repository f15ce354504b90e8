import { execFile } from "node:child_process";
import { mkdir, readFile, rmdir } from "node:fs/promises";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { type MountEntry, readMounts } from "../../frontend/index.js";
import type { VolumeView } from "../../volumes/index.js";
import { CsiError } from "./status.js";

const exec = promisify(execFile);

/** The last mount on `path` (the one a process sees), if any. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  return (await readMounts()).filter((m) => m.mountPoint === path).at(-1);
}

/** Other mount points of the file system mounted at `staging`: the bind mounts NodePublish made. */
export async function publishedPaths(staging: string): Promise<string[]> {
  const mounts = await readMounts();
  const source = mounts.filter((m) => m.mountPoint === staging).at(-1);
  if (!source) return [];
  return mounts
    .filter((m) => m.device === source.device && m.mountPoint !== staging)
    .map((m) => m.mountPoint);
}

/**
 * Refuses to grow an ext4 volume that pods use when this agent cannot grow ext4 online: without CAP_SYS_RESOURCE
 * the volume service unmounts the file system to grow it offline, which would pull it from under the pods' bind
 * mounts. Growing it while no pod uses it (staged only) works everywhere.
 */
export async function checkGrowable(view: VolumeView, nodeId: string): Promise<void> {
  if (view.attachedOn !== nodeId || !view.mountPath || !view.fs.startsWith("ext")) return;
  const published = await publishedPaths(view.mountPath);
  if (published.length === 0 || (await extGrowsOnline())) return;
  throw new CsiError(
    status.FAILED_PRECONDITION,
    `volume ${view.id} is in use at ${published.join(", ")}, and ext4 grows only unmounted on this host (the ` +
      "agent lacks CAP_SYS_RESOURCE): expand it while no pod uses it",
  );
}

/** Whether this process may resize a mounted ext4 file system (CAP_SYS_RESOURCE, capability 24). */
async function extGrowsOnline(): Promise<boolean> {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(await readFile("/proc/self/status", "utf8"))?.[1];
  return effective !== undefined && (BigInt(`0x${effective}`) & (1n << 24n)) !== 0n;
}

/** Makes `target` show the file system mounted at `source`, read-only if asked: how NodePublish hands it over. */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await mkdir(target, { recursive: true });
  await run("mount", ["--bind", source, target]);
  if (readOnly) {
    // A bind mount takes its own read-only flag only on a remount.
    await run("mount", ["-o", "remount,bind,ro", target]).catch(async (err) => {
      await run("umount", [target]).catch(() => undefined);
      throw err;
    });
  }
}

/** Unmounts `target` and removes the directory NodePublish made, if it is empty. */
export async function unbindMount(target: string): Promise<void> {
  await run("umount", [target]);
  await removeDir(target);
}

export async function removeDir(path: string): Promise<void> {
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT" && err.code !== "ENOTEMPTY") throw err;
  });
}

async function run(command: string, args: string[]): Promise<void> {
  try {
    await exec(command, args, { timeout: 30_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? "").trim();
    const busy = /busy/i.test(stderr);
    throw new CsiError(
      busy ? status.FAILED_PRECONDITION : status.INTERNAL,
      `${command} ${args.join(" ")} failed: ${stderr || (err as Error).message}`,
    );
  }
}
