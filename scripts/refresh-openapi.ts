// Writes docs/api/openapi.json: the REST API's OpenAPI document, as the agent serves it at /v1/openapi.json.
// test/unit/openapi.test.ts fails when the committed copy drifts from the routes.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { standaloneApiDocument } from "../agent/src/api/openapi.js";
import { VERSION } from "../agent/src/version.js";

const file = join(import.meta.dirname, "..", "docs", "api", "openapi.json");
writeFileSync(file, `${JSON.stringify(standaloneApiDocument(VERSION), null, 2)}\n`);
// In the repository's own format, so `npm run lint` passes on what this writes.
execFileSync("npx", ["biome", "format", "--write", file], { stdio: "ignore" });
console.log(file);
