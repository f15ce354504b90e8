import { Presets, SingleBar } from "cli-progress";
import type { Command } from "commander";
import { OperationError, SpecError } from "../errors.js";
import {
  changeFromFields,
  keyDoc,
  ONLINE_KEYS,
  parseSize,
  specFromInput,
  VOLUME_KEYS,
  type VolumeKey,
} from "../volume-spec/index.js";
import type { VolumeView } from "../volumes/index.js";
import type { ApiClient } from "./client.js";
import { collect } from "./options.js";
import { humanBytes, type OutputFormat, print, table } from "./output.js";

type Context = { client: () => ApiClient; format: (cmd: Command) => OutputFormat };

function volumeTable(volumes: VolumeView[]): string {
  return table(
    ["NAME", "ID", "SIZE", "REPL", "FS", "STATE", "ATTACHED ON", "MOUNT"],
    volumes.map((v) => [v.name, v.id, humanBytes(v.size), v.repl, v.fs, v.state, v.attachedOn, v.mountPath]),
  );
}

function inspectText(v: VolumeView): string {
  const facts = table(
    ["FIELD", "VALUE"],
    [
      ["name", v.name],
      ["id", v.id],
      ["spec", v.spec],
      ["size", `${humanBytes(v.size)} (${v.size} bytes)`],
      ["repl", v.repl],
      ["fs", v.fs],
      ["state", v.state],
      ["health", v.health],
      ["attached on", v.attachedOn],
      ["epoch", v.epoch],
      ["nbd", v.nbd],
      ["device", v.devicePath],
      ["mount", v.mountPath],
      [
        "labels",
        Object.entries(v.labels)
          .map(([k, val]) => `${k}=${val}`)
          .join(",") || null,
      ],
      ["created", v.createdAt],
    ],
  );
  const replicas = table(
    ["REPLICA NODE", "POOL", "STATE", "RESYNC", "ON DISK"],
    v.replicas.map((r) => [
      r.node,
      r.pool,
      r.state,
      r.resync ? `${Math.floor((100 * r.resync.done) / Math.max(1, r.resync.total))}%` : null,
      humanBytes(r.bytesOnDisk),
    ]),
  );
  return `${facts}\n\n${replicas}`;
}

/** `--label k=v` (repeatable) becomes the spec's labels. */
function labelsFrom(values: string[] | undefined): Record<string, string> | undefined {
  if (!values) return undefined;
  const labels: Record<string, string> = {};
  for (const pair of values) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new SpecError("labels", `"${pair}" is not KEY=VALUE`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

/** Option name for a spec key: `io_profile` becomes `--io-profile`. */
const optionName = (key: string) => key.replaceAll("_", "-");
const optionProperty = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** One option per key, from the same table the parser uses; labels get the friendlier `--label k=v` form. */
function keyOptions(command: Command, keys: readonly VolumeKey[]): void {
  for (const key of keys) {
    if (key.name !== "labels") command.option(`--${optionName(key.name)} <value>`, keyDoc(key));
  }
}

/** The keys given as options, under their canonical names. */
function keyFields(keys: readonly VolumeKey[], opts: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const key of keys) {
    const value = opts[optionProperty(key.name)];
    if (value !== undefined && key.name !== "labels") fields[key.name] = value;
  }
  const labels = labelsFrom(opts.label as string[] | undefined);
  if (labels) fields.labels = labels;
  return fields;
}

export function registerVolumeCommands(program: Command, ctx: Context): void {
  const volume = program.command("volume").description("create, inspect and use volumes");

  const create = volume
    .command("create")
    .description("create a volume from an inline spec (name=pgdata,size=20G,repl=3) or a plain name")
    .argument("<spec>", "inline spec or volume name");
  keyOptions(
    create,
    VOLUME_KEYS.filter((key) => key.name !== "name"),
  );
  create.option("--label <key=value>", "a label (repeatable)", collect);
  create.action(async (spec: string, opts: Record<string, unknown>, cmd: Command) => {
    const fields = keyFields(VOLUME_KEYS, opts);
    // Refused here as the agent would refuse it (exit 2 naming the key), reachable or not.
    specFromInput(spec, fields);
    const v = await ctx.client().request<VolumeView>("POST", "volumes", { spec, ...fields });
    print(ctx.format(cmd), v, () => `created volume ${v.name} (${v.id}): ${v.spec}`);
  });

  volume
    .command("list")
    .description("list volumes")
    .action(async (_opts, cmd: Command) => {
      const list = await ctx.client().request<VolumeView[]>("GET", "volumes");
      print(ctx.format(cmd), list, () => volumeTable(list));
    });

  volume
    .command("inspect")
    .description("show a volume")
    .argument("<name>", "volume name or id")
    .action(async (name: string, _opts, cmd: Command) => {
      const v = await ctx.client().request<VolumeView>("GET", `volumes/${encodeURIComponent(name)}`);
      print(ctx.format(cmd), v, () => inspectText(v));
    });

  volume
    .command("delete")
    .description("delete a detached volume and its data")
    .argument("<name>", "volume name or id")
    .action(async (name: string, _opts, cmd: Command) => {
      await ctx.client().request("DELETE", `volumes/${encodeURIComponent(name)}`);
      print(ctx.format(cmd), { deleted: name }, () => `deleted volume ${name}`);
    });

  // Actions that take a volume name, POST to /v1/volumes/NAME/ACTION, and answer with the volume.
  const actions: Array<[string, string, (v: VolumeView) => string]> = [
    [
      "attach",
      "attach a volume on the agent's node and serve it over NBD",
      (v) => `attached ${v.name} on ${v.attachedOn}: ${v.nbd}`,
    ],
    ["detach", "stop serving a volume on the agent's node", (v) => `detached ${v.name}`],
    ["unmount", "unmount and detach", (v) => `unmounted ${v.name}`],
  ];
  for (const [action, description, done] of actions) {
    volume
      .command(action)
      .description(description)
      .argument("<name>", "volume name or id")
      .option("--node <id>", "ask this node's agent (default: the agent at HOLDFAST_API)")
      .action(async (name: string, opts: { node?: string }, cmd: Command) => {
        const client = opts.node ? await ctx.client().node(opts.node) : ctx.client();
        const v = await client.request<VolumeView>("POST", `volumes/${encodeURIComponent(name)}/${action}`);
        print(ctx.format(cmd), v, () => done(v));
      });
  }

  volume
    .command("mount")
    .description("attach, make the file system on first use, and mount")
    .argument("<name>", "volume name or id")
    .argument("[path]", "mount point (default: the agent's mount directory / name)")
    .option("--node <id>", "mount on this node (default: the agent at HOLDFAST_API)")
    .action(async (name: string, path: string | undefined, opts: { node?: string }, cmd: Command) => {
      const client = opts.node ? await ctx.client().node(opts.node) : ctx.client();
      const v = await client.request<VolumeView>(
        "POST",
        `volumes/${encodeURIComponent(name)}/mount`,
        path ? { path } : {},
      );
      print(ctx.format(cmd), v, () => `mounted ${v.name} (${v.fs}) at ${v.mountPath}`);
    });

  volume
    .command("resize")
    .description("grow a volume (and its mounted file system)")
    .argument("<name>", "volume name or id")
    .requiredOption("--size <size>", "new size, e.g. 40G (volumes only grow)")
    .action(async (name: string, opts: { size: string }, cmd: Command) => {
      const size = parseSize(opts.size);
      const v = await ctx
        .client()
        .request<VolumeView>("PATCH", `volumes/${encodeURIComponent(name)}`, { size });
      print(ctx.format(cmd), v, () => `resized ${v.name} to ${humanBytes(v.size)}`);
    });

  const update = volume
    .command("update")
    .description(`change a volume in place while in use: ${ONLINE_KEYS.map((k) => k.name).join(", ")}`)
    .argument("<name>", "volume name or id");
  keyOptions(update, ONLINE_KEYS);
  update
    .option("--label <key=value>", "replace the labels (repeatable)", collect)
    .option("--wait", "wait until every replica is in sync, with a progress bar")
    .action(async (name: string, opts: Record<string, unknown>, cmd: Command) => {
      const fields = keyFields(ONLINE_KEYS, opts);
      // Refused here as the agent would refuse it (exit 2 naming the key), reachable or not.
      changeFromFields(fields);
      let v = await ctx.client().request<VolumeView>("PATCH", `volumes/${encodeURIComponent(name)}`, fields);
      if (opts.wait) v = await waitInSync(ctx, v, ctx.format(cmd) === "table" && process.stderr.isTTY);
      print(ctx.format(cmd), v, () => `updated ${v.name}: ${v.spec} (${v.health})`);
    });

  volume
    .command("check")
    .description("compare every in-sync replica region by region and report any difference")
    .argument("<name>", "volume name or id")
    .action(async (name: string, _opts, cmd: Command) => {
      const v = await ctx.client().request<VolumeView>("GET", `volumes/${encodeURIComponent(name)}`);
      const client = v.attachedOn ? await ctx.client().node(v.attachedOn) : ctx.client();
      const result = await client.request<{
        name: string;
        replicas: string[];
        regions: number;
        identical: boolean;
        differing: number[];
      }>("POST", `volumes/${encodeURIComponent(name)}/check`);
      print(ctx.format(cmd), result, () =>
        result.differing.length === 0
          ? `${result.name}: ${result.replicas.length} in-sync replicas (${result.replicas.join(", ")}) identical over ${result.regions} regions`
          : `${result.name}: replicas differ in ${result.differing.length} of ${result.regions} regions: ${result.differing.slice(0, 20).join(", ")}`,
      );
      // Thrown, not process.exitCode: main() sets the exit code from how the command ended, over any set here.
      if (result.differing.length > 0)
        throw new OperationError(
          "volume.replicas_differ",
          `the in-sync replicas of ${result.name} differ in ${result.differing.length} region(s)`,
        );
    });
}

/**
 * Polls the node where the volume is attached (only it knows resync progress) until every replica is in sync,
 * drawing a progress bar of the regions copied so far.
 */
async function waitInSync(ctx: Context, start: VolumeView, bar: boolean): Promise<VolumeView> {
  const progress = bar
    ? new SingleBar(
        { format: "resync {bar} {percentage}% | {value}/{total} regions | {replica}" },
        Presets.shades_classic,
      )
    : undefined;
  let v = start;
  try {
    for (;;) {
      const client = v.attachedOn ? await ctx.client().node(v.attachedOn) : ctx.client();
      v = await client.request<VolumeView>("GET", `volumes/${encodeURIComponent(v.id)}`);
      const syncing = v.replicas.find((r) => r.resync);
      if (progress && syncing?.resync) {
        if (!progress.isActive) progress.start(syncing.resync.total, 0, { replica: syncing.node });
        progress.setTotal(syncing.resync.total);
        progress.update(syncing.resync.done, { replica: syncing.node });
      }
      const all = v.replicas.length === v.repl && v.replicas.every((r) => r.state === "in-sync");
      if (all) return v;
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    progress?.stop();
  }
}
