import { execFile } from "node:child_process";
import { OperationError } from "../errors.js";

/** What a finished child process left behind. */
export interface RunResult {
  /** The exit code; 127 when the command could not be started, -1 when a signal killed it. */
  code: number;
  stdout: string;
  stderr: string;
}

const OPTIONS = { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 } as const;

/**
 * Runs a command as a child process and waits for it without blocking the event loop. Every command that
 * touches a volume's loop device or file system goes through here: this process serves the FUSE file under
 * them, so a synchronous wait would deadlock the kernel and the agent (docs/decisions/0003).
 */
export function runStatus(cmd: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, OPTIONS, (err, stdout, stderr) => {
      // `code` is the exit status, or an errno string such as ENOENT when the command could not start.
      const code: unknown = err?.code;
      if (!err) resolve({ code: 0, stdout, stderr });
      else if (typeof code === "number") resolve({ code, stdout, stderr });
      else if (err.signal) resolve({ code: -1, stdout, stderr: `${stderr}killed by ${err.signal}` });
      else resolve({ code: 127, stdout, stderr: `${cmd}: ${err.message}` });
    });
    // A prompt (mke2fs asks before overwriting some devices) must read end-of-file rather than wait forever.
    child.stdin?.end();
  });
}

/** Runs a command; a non-zero exit rejects with an OperationError that quotes the command and its stderr. */
export async function run(code: string, cmd: string, args: readonly string[]): Promise<string> {
  const result = await runStatus(cmd, args);
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
