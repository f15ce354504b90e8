import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { standaloneApiDocument } from "../../agent/src/api/openapi.js";
import { VERSION } from "../../agent/src/version.js";

// The committed OpenAPI document (docs/api/openapi.json) is the routes' own: a route, a body schema or a spec key that
// changes without it fails here, with the command that brings it up to date.
test("docs/api/openapi.json is the document the routes describe", async () => {
  const committed = JSON.parse(
    await readFile(join(import.meta.dirname, "../../docs/api/openapi.json"), "utf8"),
  );
  const current = JSON.parse(JSON.stringify(standaloneApiDocument(VERSION)));
  assert.equal(
    committed,
    current,
    "docs/api/openapi.json drifted from the routes: run node --import tsx scripts/refresh-openapi.ts and review the diff",
  );
});

test.run();
