import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ApiVolume, GIB, hcl, ProviderFixture, providerBlock, volume } from "./terraform-support.js";

// The real `terraform` CLI (1.11) runs the built provider (providers/bin, through dev_overrides) against a real
// agent with a local store. Volumes have one replica here: key-walk.test.ts changes replicas 1 -> 2 (and every other key) on
// a 3-node dev cluster.

const fx = new ProviderFixture(test);

test("lifecycle: create, no changes, grow in place, rename replaces, drift, import, destroy", async () => {
  // Create: one volume as attributes, one as an inline spec.
  await fx.tf.write({
    "main.tf":
      providerBlock() +
      volume("a", { name: "tf-a", size: "1G", labels: hcl('{ app = "pg" }') }) +
      volume("b", { spec: "name=tf-b,size=512M,fs=xfs" }),
  });
  const plan = await fx.tf.plan();
  assert.is(plan.code, 2, plan.stderr);
  assert.match(plan.stdout, "Plan: 2 to add, 0 to change, 0 to destroy.");
  await fx.tf.apply();
  const a = await fx.byName("tf-a");
  assert.equal([a?.size, a?.repl, a?.fs, a?.labels], [GIB, 1, "ext4", { app: "pg" }]);
  assert.equal([(await fx.byName("tf-b"))?.size, (await fx.byName("tf-b"))?.fs], [512 * 2 ** 20, "xfs"]);
  const again = await fx.tf.plan();
  assert.is(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, "No changes.");

  // Grow in place, given in bytes this time, and new labels: same id, new size and labels.
  await fx.tf.write({
    "main.tf":
      providerBlock() +
      volume("a", { name: "tf-a", size: 2 * GIB, labels: hcl('{ app = "pg", tier = "db" }') }) +
      volume("b", { spec: "name=tf-b,size=1G,fs=xfs" }),
  });
  const grow = await fx.tf.plan();
  assert.match(grow.stdout, "Plan: 0 to add, 2 to change, 0 to destroy.");
  assert.match(grow.stdout, "update in-place");
  await fx.tf.apply();
  assert.is((await fx.byName("tf-a"))?.id, a?.id);
  assert.is((await fx.byName("tf-a"))?.size, 2 * GIB);
  assert.equal((await fx.byName("tf-a"))?.labels, { app: "pg", tier: "db" });
  assert.is((await fx.byName("tf-b"))?.size, GIB);
  assert.is((await fx.tf.plan()).code, 0);

  // Shrinking: the plan warns on the size attribute, apply refuses and changes nothing.
  await fx.tf.write({
    "main.tf":
      providerBlock() +
      volume("a", { name: "tf-a", size: "1G", labels: hcl('{ app = "pg" }') }) +
      volume("b", { spec: "name=tf-b,size=1G,fs=xfs" }),
  });
  const shrink = await fx.tf.plan();
  assert.is(shrink.code, 2, shrink.stderr);
  assert.match(
    shrink.stdout,
    /Warning: Volumes cannot shrink[\s\S]*with holdfast_volume\.a,[\s\S]*size = "1G"/,
  );
  const refused = await fx.tf.run("apply", "-no-color", "-input=false", "-auto-approve");
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /Error: Volumes cannot shrink[\s\S]*nothing was changed/);
  assert.is((await fx.byName("tf-a"))?.size, 2 * GIB);

  // A new name replaces the volume.
  await fx.tf.write({
    "main.tf":
      providerBlock() +
      volume("a", { name: "tf-a2", size: "2G", labels: hcl('{ app = "pg" }') }) +
      volume("b", { spec: "name=tf-b,size=1G,fs=xfs" }),
  });
  const rename = await fx.tf.plan();
  assert.match(rename.stdout, "must be replaced");
  assert.match(rename.stdout, /name\s+= "tf-a" -> "tf-a2" # forces replacement/);
  await fx.tf.apply();
  assert.is(await fx.byName("tf-a"), undefined);
  assert.ok(await fx.byName("tf-a2"));
  assert.is.not((await fx.byName("tf-a2"))?.id, a?.id);

  // Drift: a volume deleted behind Terraform's back is planned again; one grown behind its back shows up.
  assert.is((await fx.agent.api("DELETE", "/v1/volumes/tf-b")).status, 204);
  assert.is((await fx.agent.api("PATCH", "/v1/volumes/tf-a2", { size: "3G" })).status, 200);
  const drift = await fx.tf.run("plan", "-no-color", "-input=false", "-refresh-only");
  assert.match(drift.stdout, /size\s+= "2G" -> "3G"/);
  assert.match(drift.stdout, /holdfast_volume\.b[\s\S]*has been deleted/);
  const replan = await fx.tf.plan();
  assert.match(replan.stdout, "holdfast_volume.b will be created");
  assert.match(replan.stdout, "Warning: Volumes cannot shrink");

  // Import: a volume made outside Terraform, by name and by id; the plan after it has nothing to do.
  await fx.tf.ok("state", "rm", "holdfast_volume.a", "holdfast_volume.b");
  await fx.agent.api("DELETE", "/v1/volumes/tf-a2");
  const made = (await fx.agent.api("POST", "/v1/volumes", { spec: "name=tf-imp,size=3G,labels=app:web" }))
    .body as ApiVolume;
  const other = (await fx.agent.api("POST", "/v1/volumes", { name: "tf-imp2", size: "1G" }))
    .body as ApiVolume;
  await fx.tf.write({
    "main.tf":
      providerBlock() +
      volume("imp", { name: "tf-imp", size: "3G", labels: hcl('{ app = "web" }') }) +
      volume("imp2", { name: "tf-imp2", size: "1G" }),
  });
  await fx.tf.ok("import", "-no-color", "-input=false", "holdfast_volume.imp", "tf-imp");
  await fx.tf.ok("import", "-no-color", "-input=false", "holdfast_volume.imp2", other.id);
  const imported = await fx.tf.plan();
  assert.is(imported.code, 0, imported.stdout + imported.stderr);
  assert.match(
    await fx.tf.ok("state", "show", "-no-color", "holdfast_volume.imp"),
    new RegExp(`id\\s+= "${made.id}"`),
  );
  const missing = await fx.tf.run(
    "import",
    "-no-color",
    "-input=false",
    "holdfast_volume.imp",
    "no-such-volume",
  );
  assert.is(missing.code, 1);

  // Destroy removes everything.
  await fx.tf.ok("destroy", "-no-color", "-input=false", "-auto-approve");
  assert.equal(await fx.volumes(), []);
});

test("a volume grown outside Terraform: the plan shows the drift and why it cannot apply, destroy works", async () => {
  await fx.tf.write({ "main.tf": providerBlock() + volume("g", { name: "tf-grown", size: "1G" }) });
  await fx.tf.apply();
  const resize = await fx.agent.cli("volume", "resize", "tf-grown", "--size", "2G");
  assert.is(resize.code, 0, resize.stderr);

  const plan = await fx.tf.plan();
  assert.is(plan.code, 2, plan.stderr);
  assert.match(plan.stdout, /holdfast_volume\.g will be updated in-place[\s\S]*size\s+= "2G" -> "1G"/);
  assert.match(
    plan.stdout,
    /Warning: Volumes cannot shrink[\s\S]*The volume is 2G \(2147483648 bytes\) and the configuration asks for\s+1G[\s\S]*raise\s+size\s+to\s+2G/,
  );
  const apply = await fx.tf.run("apply", "-no-color", "-input=false", "-auto-approve");
  assert.is(apply.code, 1);
  assert.match(apply.stderr, "Error: Volumes cannot shrink");
  assert.is((await fx.byName("tf-grown"))?.size, 2 * GIB, "the refused apply changed nothing");

  // Terraform plans normally before a destroy: the warning must not stop it.
  const destroy = await fx.tf.run("destroy", "-no-color", "-input=false", "-auto-approve");
  assert.is(destroy.code, 0, destroy.stderr);
  assert.match(destroy.stdout, "Destroy complete! Resources: 1 destroyed.");
  assert.equal(await fx.volumes(), []);
});

test.run();
