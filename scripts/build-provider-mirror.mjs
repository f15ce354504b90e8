// Lays the built provider out as a Terraform filesystem mirror, so `terraform init` (and `cdktf deploy`, which
// runs it) installs holdfast/holdfast offline:
//
//   node scripts/build-provider-mirror.mjs [DIR]      (DIR defaults to providers/bin/mirror)
//
// and writes DIR/terraformrc, a CLI configuration that installs holdfast/holdfast from DIR only; use it with
// TF_CLI_CONFIG_FILE=DIR/terraformrc. See providers/README.md.
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { dirname, join, resolve } from "node:path";
import { buildProvider } from "./build-provider.mjs";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const ARCH = { x64: "amd64", arm64: "arm64", ia32: "386", arm: "arm" };

/** Builds the provider and writes the mirror into `dir`; returns the CLI configuration's path. */
export async function buildMirror(dir = join(root, "providers/bin/mirror")) {
  const mirror = resolve(dir);
  const executable = await buildProvider();
  const { version } = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
  const target = join(
    mirror,
    "registry.terraform.io/holdfast/holdfast",
    version,
    `${platform()}_${ARCH[arch()] ?? arch()}`,
  );
  await rm(join(mirror, "registry.terraform.io/holdfast/holdfast"), { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  await copyFile(executable, join(target, `terraform-provider-holdfast_v${version}`));
  const config = join(mirror, "terraformrc");
  await writeFile(
    config,
    `provider_installation {
  filesystem_mirror {
    path    = "${mirror}"
    include = ["registry.terraform.io/holdfast/holdfast"]
  }
  direct {
    exclude = ["registry.terraform.io/holdfast/holdfast"]
  }
}
`,
  );
  return config;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const config = await buildMirror(process.argv[2]);
  console.log(`mirror ready; use it with TF_CLI_CONFIG_FILE=${config}`);
}
