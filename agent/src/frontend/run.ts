import { spawn } from "node:child_process";
import { openSync, readdirSync, readlinkSync } from "node:fs";
import { OperationError } from "../errors.js";

/** What a finished child process left behind. */
export interface RunResult {
  /** The exit code; 127 when the command could not be started, -1 when a signal killed it. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /**
   * Milliseconds before the command is killed and the call fails with `volume.timeout`. Long enough for mkfs,
   * e2fsck and resize2fs on a large volume by default; the steps of a close pass their own, shorter, limit.
   * @default 600000
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 600_000;

/**
 * Runs a command as a child process and waits for it without blocking the event loop. Every command that
 * touches a volume's loop device or file system goes through here: this process serves the FUSE file under
 * them, so a synchronous wait would deadlock the kernel and the agent (docs/decisions/0003).
 *
 * A command that has not finished after `timeoutMs` is killed and the call rejects at once: a child stuck in
 * the kernel on an unanswered FUSE request may not die, and the caller must not wait for it.
 */
export function runStatus(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    // stdin is /dev/null: a prompt (mke2fs asks before overwriting some devices) reads end-of-file.
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe", ...withoutFuse()] });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new OperationError(
          "volume.timeout",
          `${[cmd, ...args].join(" ")} did not finish in ${timeoutMs / 1000} s and was killed${stderr ? `: ${stderr.trim()}` : ""}`,
        ),
      );
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${cmd}: ${err.message}` });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (signal) resolve({ code: -1, stdout, stderr: `${stderr}killed by ${signal}` });
      else resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Runs a command; a non-zero exit rejects with an OperationError that quotes the command and its stderr. */
export async function run(
  code: string,
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  const result = await runStatus(cmd, args, opts);
  if (result.code !== 0) throw commandError(code, cmd, args, result);
  return result.stdout;
}

/** The OperationError for a failed command. */
export function commandError(
  code: string,
  cmd: string,
  args: readonly string[],
  result: RunResult,
): OperationError {
  const output = (result.stderr.trim() || result.stdout.trim() || "no output").split("\n");
  // The first lines say what went wrong; some tools follow them with their whole usage text.
  const detail = output.length > 6 ? `${output.slice(0, 6).join("\n")}\n…` : output.join("\n");
  return new OperationError(code, `${[cmd, ...args].join(" ")} failed (exit ${result.code}): ${detail}`);
}

/** Rejects with `volume.timeout` if `work` has not settled after `timeoutMs`; `work` itself runs on. */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new OperationError("volume.timeout", `${what} did not finish in ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

let devNull: number | undefined;

/**
 * The child's descriptors from 3 on: /dev/null in place of each one this process holds on /dev/fuse, the rest
 * inherited as they are. libfuse opens /dev/fuse without O_CLOEXEC, so every child would otherwise hold the
 * FUSE connection of every exposed volume, and the kernel ends a connection only when its last descriptor
 * closes: if the agent died while such a child ran, the connection would stay up with no server, and every
 * request to it (a umount's flush, a losetup's stat of the file, the child's own I/O) would wait forever.
 * Read synchronously (procfs, never a FUSE mount) so that no mount opens a descriptor between the look and the
 * spawn.
 */
export function withoutFuse(): (number | "ignore")[] {
  const fuse: number[] = [];
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === "/dev/fuse") fuse.push(Number(name));
    } catch {
      // The descriptor readdir itself used, closed since.
    }
  }
  if (fuse.length === 0) return [];
  devNull ??= openSync("/dev/null", "r");
  const slots: (number | "ignore")[] = Array.from({ length: Math.max(...fuse) - 2 }, () => "ignore");
  for (const fd of fuse) slots[fd - 3] = devNull;
  return slots;
}
