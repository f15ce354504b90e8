/**
 * Volumes as code: a cluster's volumes declared with HoldfastVolume, from props or from inline specs, and kept
 * as declared by `cdktf deploy`. The provider reads the agent's address and token from HOLDFAST_API and
 * HOLDFAST_TOKEN, so neither is in the synthesized JSON.
 */
import { join, resolve } from "node:path";
import { App, HoldfastProvider, TerraformStack } from "../../constructs/cdktf.js";
import { HoldfastVolume } from "../../constructs/index.js";

export function volumesGitops(app: App): TerraformStack {
  const stack = new TerraformStack(app, "volumes-gitops");
  new HoldfastProvider(stack, "holdfast");
  // The generated binding names no provider version, and cdktf-cli refuses a required provider without one.
  stack.addOverride("terraform.required_providers.holdfast.version", "~> 0.1.0");
  // Volumes only grow: after a grow made outside Terraform, `cdktf diff` warns until this size is raised to match.
  new HoldfastVolume(stack, "pgdata", {
    volume: {
      name: "pgdata",
      size: "1G",
      repl: 1,
      fs: "ext4",
      labels: { app: "postgres", tier: "db" },
    },
  });
  new HoldfastVolume(stack, "web-logs", { spec: "name=web-logs,size=256M,labels=app:web" });
  new HoldfastVolume(stack, "cache", { spec: "name=cache,size=512M,fs=xfs,io_profile=random" });
  return stack;
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  const app = new App({
    outdir: process.env.CDKTF_OUTDIR ? undefined : join(import.meta.dirname, "cdktf.out"),
  });
  volumesGitops(app);
  app.synth();
}
