import { CommanderError } from "commander";
import { buildProgram } from "./cli/index.js";
import { HoldfastError, InputError } from "./errors.js";

/**
 * grpc-js (etcd3's transport) sets the TLS server name to the etcd member's address, an IP wherever etcd is reached by
 * one, and Node warns (DEP0123) on stderr for each such connection, ahead of the CLI's own messages. The IP is still
 * verified against the certificate's IP SANs; only that one warning is dropped.
 */
function quietGrpcServerNameWarning(): void {
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const [type, code] = rest;
    const options = typeof type === "object" && type !== null ? (type as { code?: string }) : { code };
    if (options.code === "DEP0123") return;
    (emit as (...args: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}

/** Exit codes: 0 success, 2 bad input (usage, spec, 4xx validation), 1 any other failure. */
async function main(): Promise<number> {
  try {
    await buildProgram().parseAsync(process.argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      return 2;
    }
    if (err instanceof HoldfastError) {
      process.stderr.write(`holdfast: ${err.message}\n`);
      return err instanceof InputError ? 2 : 1;
    }
    process.stderr.write(`holdfast: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

quietGrpcServerNameWarning();
process.exitCode = await main();
