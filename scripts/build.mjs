// Bundles the agent and CLI into one ESM file, dist/holdfast.mjs: what a host runs, with only the native
// FUSE binding (fuse-native) loaded from node_modules beside it.
import { build } from "esbuild";

await build({
  entryPoints: ["agent/src/main.ts"],
  outfile: "dist/holdfast.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  external: ["fuse-native"],
  banner: {
    js: "import { createRequire as __holdfastRequire } from 'node:module'; const require = __holdfastRequire(import.meta.url);",
  },
  logLevel: "warning",
});
