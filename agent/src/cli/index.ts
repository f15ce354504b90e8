// The command line: what main.ts runs.
export { buildProgram } from "./program.js";
