import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readDockerName } from "../../agent/src/api/docker-plugin/names.js";
import { ROOT } from "../support/agent-process.js";

// The Marathon app definitions in examples/marathon: every Holdfast volume name in them must read as the Docker
// plugin reads it, and each app must respect the limits the examples' README states.
const DIR = join(ROOT, "examples/marathon");

interface App {
  id: string;
  instances: number;
  container: {
    type: "MESOS" | "DOCKER";
    docker?: { parameters?: Array<{ key: string; value: string }> };
    volumes?: Array<{
      containerPath: string;
      external?: { provider: string; name: string; options: Record<string, string>; size?: number };
    }>;
  };
  upgradeStrategy?: { maximumOverCapacity: number };
}

/** The Holdfast volume names an app asks for: dvdi external volumes, and `-v` given as docker parameters. */
function volumeNames(app: App): Array<{ name: string; via: "dvdi" | "docker" }> {
  const dvdi = (app.container.volumes ?? [])
    .filter((v) => v.external?.options["dvdi/driver"] === "holdfast")
    .map((v) => ({ name: v.external?.name as string, via: "dvdi" as const }));
  const parameters = app.container.docker?.parameters ?? [];
  const driver = parameters.find((p) => p.key === "volume-driver")?.value;
  const docker = parameters
    .filter((p) => p.key === "volume" && driver === "holdfast")
    .map((p) => {
      // Docker splits `-v NAME:PATH[:MODE]` at ":", so the name is what comes before the first one.
      const [name = "", path = ""] = p.value.split(":");
      assert.ok(path.startsWith("/"), `${app.id}: "${p.value}" must be NAME:/container/path`);
      return { name, via: "docker" as const };
    });
  return [...dvdi, ...docker];
}

async function examples(): Promise<Array<{ file: string; app: App }>> {
  const files = (await readdir(DIR)).filter((f) => f.endsWith(".json")).sort();
  return Promise.all(
    files.map(async (file) => ({ file, app: JSON.parse(await readFile(join(DIR, file), "utf8")) as App })),
  );
}

test("there are examples for both containerizers and a scaled app", async () => {
  const all = await examples();
  assert.ok(all.some(({ app }) => app.container.type === "MESOS" && volumeNames(app).length > 0));
  assert.ok(all.some(({ app }) => app.container.type === "DOCKER" && volumeNames(app).length > 0));
  assert.ok(all.some(({ app }) => app.instances > 1));
});

test("every Holdfast volume name parses as the Docker plugin reads it", async () => {
  for (const { file, app } of await examples()) {
    const names = volumeNames(app);
    assert.ok(names.length > 0, `${file} uses no Holdfast volume`);
    for (const { name } of names) {
      const spec = readDockerName(name);
      assert.ok(spec.name.length > 0, `${file}: ${name}`);
      assert.ok(name.includes("="), `${file}: "${name}" should be an inline spec, as the README shows`);
    }
  }
});

test("each app stays inside the limits the README states", async () => {
  for (const { file, app } of await examples()) {
    for (const { name, via } of volumeNames(app)) {
      const scale = readDockerName(name).scale ?? 1;
      if (via === "dvdi") {
        // Marathon's DVDI validation: one instance per app that declares a dvdi volume.
        assert.ok(app.instances <= 1, `${file}: Marathon refuses instances > 1 with a dvdi volume`);
        const volume = app.container.volumes?.find((v) => v.external?.name === name);
        if (app.container.type === "DOCKER") {
          assert.equal(
            Object.keys(volume?.external?.options ?? {}),
            ["dvdi/driver"],
            `${file}: docker options`,
          );
          assert.is(volume?.external?.size, undefined, `${file}: Marathon refuses external.size for Docker`);
        } else {
          assert.not.match(
            volume?.containerPath ?? "/",
            /\//,
            `${file}: a MESOS containerPath is one relative dir`,
          );
        }
      }
      assert.ok(scale >= app.instances, `${file}: ${app.instances} instances but ${name} has scale=${scale}`);
      if (app.instances > 1) {
        assert.is(
          app.upgradeStrategy?.maximumOverCapacity,
          0,
          `${file}: a rolling deploy would need scale+1`,
        );
      }
    }
  }
});

test("a name that the plugin would refuse fails here too", () => {
  assert.throws(() => readDockerName("name=journal,size=1G,scale=3,colour=blue"), /colour: unknown key/);
  assert.throws(() => readDockerName(`name=${"x".repeat(62)},scale=10`), /too long for scale=10/);
});

test.run();
