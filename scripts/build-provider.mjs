// Builds the Terraform provider into ONE self-contained file, providers/bin/terraform-provider-holdfast:
// `terraform init` copies the executable out of a filesystem mirror on its own, so nothing may sit beside it.
//
// 1. The .proto files in providers/proto/ are compiled to providers/proto/descriptors.json, which the provider
//    loads instead of parsing .proto text at every start (Terraform starts it 2-5 times per command).
// 2. esbuild bundles providers/src/main.ts and every dependency into one script. The script must run as a
//    CommonJS file (no package.json beside the copy Terraform makes) and as an ES module (inside this repo, whose
//    package.json says "type": "module"), so it is an async function that gets `require` from a dynamic import,
//    which both kinds of file allow.
import { execFileSync } from "node:child_process";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import protobuf from "protobufjs";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const protoDir = join(root, "providers/proto");
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

export async function buildProvider() {
  await writeDescriptors();
  const result = await build({
    entryPoints: [join(root, "providers/src/main.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "iife",
    minify: true,
    legalComments: "none",
    write: false,
    logLevel: "warning",
  });
  const body = result.outputFiles[0].text;
  const header =
    "#!/usr/bin/env node\n" +
    "// terraform-provider-holdfast, built by scripts/build-provider.mjs from providers/src (bundled dependencies keep their licenses; see package-lock.json).\n" +
    '(async () => { const require = (await import("node:module")).createRequire(process.argv[1] || __filename);\n';
  await mkdir(dirname(outfile), { recursive: true });
  await writeFile(outfile, `${header}${body}})();\n`);
  await chmod(outfile, 0o755);
  return outfile;
}

if (process.argv[1] === new URL(import.meta.url).pathname) await buildProvider();
