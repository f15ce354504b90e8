import { CommanderError } from "commander";
import { buildProgram } from "./cli/program.js";
import { HoldfastError } from "./errors.js";

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
      return err.status === 400 ? 2 : 1;
    }
    process.stderr.write(`holdfast: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main();
