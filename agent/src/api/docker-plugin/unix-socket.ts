import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { ConflictError, SpecError } from "../../errors.js";

/** sockaddr_un holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Makes `path` ready for a server to listen on: its directory exists, and a socket left behind by a process that
 * died is removed. A socket some live process still answers on is refused rather than stolen, and so is a path
 * that is not a socket: both are configuration mistakes the user must see.
 */
export async function claimSocket(path: string, what: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new SpecError(
      what,
      `${path} is longer than ${MAX_SOCKET_PATH} bytes, the limit of a unix socket path`,
    );
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const found = await lstat(path).catch(() => undefined);
  if (!found) return;
  if (!found.isSocket()) {
    throw new ConflictError("socket.not_a_socket", `${what}: ${path} exists and is not a socket`, what);
  }
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (answered) {
    throw new ConflictError(
      "socket.in_use",
      `${what}: another process (another agent?) serves ${path}: stop it, or give this agent another path`,
      what,
    );
  }
  await rm(path, { force: true });
}

/**
 * Only root may use a socket that carries no credentials of its own: Docker and the kubelet run as root, and
 * anyone who can connect can mount and delete volumes.
 */
export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, 0o600);
}
