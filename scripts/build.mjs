// Bundles the agent and CLI into one ESM file, dist/holdfast.mjs: what a host runs. Two packages still load from
// node_modules beside it: fuse-native (a native binding) and etcd3 (it reads its .proto files from its own
// directory at run time).
import { build } from "esbuild";

await build({
  entryPoints: ["agent/src/main.ts"],
  outfile: "dist/holdfast.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  external: ["fuse-native", "etcd3"],
  banner: {
    js: "import { createRequire as __holdfastRequire } from 'node:module'; const require = __holdfastRequire(import.meta.url);",
  },
  logLevel: "warning",
});
await import("./build-provider.mjs").then((provider) => provider.buildProvider());
