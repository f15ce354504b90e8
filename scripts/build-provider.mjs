// Builds the Terraform provider into ONE self-contained file, providers/bin/terraform-provider-holdfast:
// `terraform init` copies the executable out of a filesystem mirror on its own, so nothing may sit beside it.
//
// 1. The .proto files in providers/proto/ are compiled to providers/proto/descriptors.json, which the provider
//    loads instead of parsing .proto text at every start (Terraform starts it 2-5 times per command).
// 2. esbuild bundles providers/src/main.ts and every dependency into one script (most of it as strings inside it,
//    compiled when needed, see CARRIED). The script must run as a
//    CommonJS file (no package.json beside the copy Terraform makes) and as an ES module (inside this repo, whose
//    package.json says "type": "module"), so it is an async function that gets `require` from a dynamic import,
//    which both kinds of file allow.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import protobuf from "protobufjs";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const protoDir = join(root, "providers/proto");
const srcDir = join(root, "providers/src");
const outfile = join(root, "providers/bin/terraform-provider-holdfast");

export async function writeDescriptors() {
  const descriptors = new protobuf.Root().loadSync(
    ["tfplugin6.proto", "go-plugin.proto", "health.proto"].map((file) => join(protoDir, file)),
    { keepCase: true },
  );
  const path = join(protoDir, "descriptors.json");
  // Written as the repo's formatter writes JSON, so a build leaves `biome check` green.
  const text = execFileSync(join(root, "node_modules/.bin/biome"), ["format", `--stdin-file-path=${path}`], {
    input: JSON.stringify(descriptors.toJSON()),
    encoding: "utf8",
  });
  const before = await readFile(path, "utf8").catch(() => "");
  if (before !== text) await writeFile(path, text);
}

const BUNDLE = {
  bundle: true,
  platform: "node",
  target: "node20",
  minify: true,
  legalComments: "none",
  write: false,
};

/**
 * Modules built on their own and carried as strings, by path under providers/src/, with the exports their importer
 * uses. V8 parses all of a script's text when it loads it, so:
 * - the provider proper (plugin/provider-service.ts: the spec table with zod, got, the resources; more than half of
 *   the bundle) is compiled only after the handshake;
 * - the handshake half (plugin/index.ts: grpc-js, the descriptors, serve) is compiled at every start, with V8's code
 *   cache (`cached`, plugin/code-cache.ts), which main.ts saves after the handshake. The rest of the file is main.ts
 *   and the code cache itself, which Node compiles as usual.
 */
const CARRIED = {
  "plugin/index": { exports: ["createLogger", "serve"], cached: true },
  "plugin/provider-service": { exports: ["providerService"] },
};

const carried = {
  name: "carried-as-string",
  setup(build) {
    build.onResolve({ filter: /\/(plugin\/index|provider-service)\.js$/ }, (args) => {
      const path = join(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
      return args.kind === "entry-point" ? undefined : { path, namespace: "carried" };
    });
    build.onLoad({ filter: /.*/, namespace: "carried" }, async (args) => {
      const inner = await build.esbuild.build({
        ...BUNDLE,
        entryPoints: [args.path],
        format: "cjs",
        plugins: [carried],
        logLevel: "warning",
      });
      const text = inner.outputFiles[0].text;
      const { exports, cached } = CARRIED[relative(srcDir, args.path).replace(/\.ts$/, "")];
      const code = JSON.stringify(text);
      const key = createHash("sha256").update(text).digest("hex").slice(0, 16);
      const compile = cached
        ? `import { compileCached } from "./plugin/code-cache.ts"; const compiled = compileCached(${code}, "${key}", process.argv[1] || "terraform-provider-holdfast");`
        : `const compiled = new Function("require", "module", "exports", ${code});`;
      return {
        contents: `${compile} const module = { exports: {} }; compiled(require, module, module.exports); export const { ${exports.join(", ")} } = module.exports;`,
        loader: "js",
        resolveDir: srcDir,
      };
    });
  },
};

/**
 * The file's second line, read by both sh and Node. Terraform runs the file, so sh starts it: the line moves
 * NODE_EXTRA_CA_CERTS (which Terraform passes on from the user's environment) to HOLDFAST_PROVIDER_EXTRA_CA_CERTS and
 * runs Node on the same file. Node 20 parses that file, and builds its root store, at every process start (about
 * 85 ms here with the system bundle) although the handshake needs none of it; the provider's API client trusts
 * those certificates itself for an https endpoint (providers/src/client.ts). To Node the line is a string and a comment,
 * so `node FILE` works too (and Node reads NODE_EXTRA_CA_CERTS itself). Plain sh, not `env -S`: BusyBox's env (the
 * Alpine-based terraform image) and coreutils before 8.30 have no -S.
 */
const START_LINE =
  '\':\' //; export HOLDFAST_PROVIDER_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"; unset NODE_EXTRA_CA_CERTS; exec node "$0" "$@"';

export async function buildProvider() {
  await writeDescriptors();
  const result = await build({
    ...BUNDLE,
    entryPoints: [join(root, "providers/src/main.ts")],
    format: "iife",
    plugins: [carried],
    logLevel: "warning",
  });
  const body = result.outputFiles[0].text;
  const header =
    `#!/bin/sh\n${START_LINE}\n` +
    "// terraform-provider-holdfast, built by scripts/build-provider.mjs from providers/src (bundled dependencies keep their licenses; see package-lock.json).\n" +
    ';(async () => { const require = (await import("node:module")).createRequire(process.argv[1] || __filename);\n';
  await mkdir(dirname(outfile), { recursive: true });
  // Written beside and renamed into place, so a Terraform starting the provider meanwhile never reads half a file.
  await writeFile(`${outfile}.tmp`, `${header}${body}})();\n`, { mode: 0o755 });
  await rename(`${outfile}.tmp`, outfile);
  return outfile;
}

if (process.argv[1] === new URL(import.meta.url).pathname) await buildProvider();
