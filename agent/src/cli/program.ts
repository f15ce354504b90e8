import { access } from "node:fs/promises";
import { join } from "node:path";
import { Command, Option } from "commander";
import pino from "pino";
import type { NodeStatus } from "../cluster/index.js";
import { loadAgentConfig, settingFlags } from "../config/index.js";
import { ConflictError } from "../errors.js";
import { startAgent } from "../node-agent.js";
import { createClusterCa, issueNodeIdentity, loadCa, saveCa, saveIdentity } from "../transport/index.js";
import { VERSION } from "../version.js";
import type { QuarantineRecord } from "../volumes/index.js";
import { ApiClient } from "./client.js";
import { registerDevCommands } from "./dev-commands.js";
import { registerEnrollmentCommands } from "./enrollment-commands.js";
import { registerEtcdCommands } from "./etcd-commands.js";
import { collect, parseDuration } from "./options.js";
import { humanBytes, type OutputFormat, print, table } from "./output.js";
import { registerVolumeCommands } from "./volume-commands.js";

/** A node as `node list` and `cluster status` show it. */
type NodeRow = NodeStatus & { quarantined: number };

/** The `holdfast` command line. Exit codes: 0 success, 2 bad input, 1 failure (see main.ts). */
export function buildProgram(): Command {
  const program = new Command("holdfast")
    .description("Holdfast: replicated volumes for stateful containers")
    .version(VERSION)
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"),
    )
    .option(
      "--ca <file>",
      "the cluster CA (ca.crt) an https agent's certificate must be signed by (or HOLDFAST_CA)",
    )
    .showHelpAfterError()
    .exitOverride();

  const format = (cmd: Command): OutputFormat => cmd.optsWithGlobals().output as OutputFormat;
  const client = () =>
    new ApiClient({
      url: process.env.HOLDFAST_API,
      token: process.env.HOLDFAST_TOKEN,
      caFile: program.opts().ca ?? (process.env.HOLDFAST_CA || undefined),
    });

  const agentCommand = program
    .command("agent")
    .description("run the node agent in the foreground (settings: docs/agent-settings.md)")
    .option("--config <file>", "JSON file with the same settings as the flags (flags win)");
  // One flag per setting, from the settings table that also builds the config schema.
  const settingOptions = settingFlags().map((flag) => {
    const option = new Option(flag.flags, flag.help);
    if (flag.value === "number") option.argParser(Number);
    if (flag.value === "list") option.argParser(collect);
    agentCommand.addOption(option);
    // `--pool` is commander's `pool`; the setting is `pools`.
    return { setting: flag.name, key: option.attributeName() };
  });
  agentCommand.action(async (opts: Record<string, unknown>, cmd: Command) => {
    // Only what was given on the command line: commander's own defaults (a --no- switch's true) would
    // otherwise override the config file.
    const flags: Record<string, unknown> = {};
    for (const { setting, key } of settingOptions) {
      if (cmd.getOptionValueSource(key) === "cli") flags[setting] = opts[key];
    }
    const config = await loadAgentConfig({ file: opts.config as string | undefined, flags });
    const logger = pino({ level: config.logLevel });
    const agent = await startAgent(config, logger);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, "stopping");
        agent.stop().then(resolve, (err) => {
          logger.error({ err }, "stop failed");
          resolve();
        });
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
  });

  registerVolumeCommands(program, { client, format });
  registerDevCommands(program, { format });
  registerEtcdCommands(program, { format });

  const nodesTable = (nodes: NodeRow[]) =>
    table(
      [
        "NODE",
        "API",
        "REPLICATION",
        "ZONE",
        "RACK",
        "STATE",
        "CAPACITY",
        "USED",
        "QUARANTINED",
        "CERT EXPIRES",
      ],
      nodes.map((n) => [
        n.id,
        n.api,
        n.replication || "-",
        n.zone,
        n.rack,
        n.state,
        humanBytes(n.capacity),
        humanBytes(n.capacity - n.free),
        n.quarantined,
        n.certNotAfter ?? "-",
      ]),
    );
  const quarantineTable = (entries: QuarantineRecord[]) =>
    entries.length === 0
      ? "no quarantined replicas"
      : table(
          ["NODE", "VOLUME ID", "POOL", "SINCE", "SIZE"],
          entries.map((q) => [q.node, q.volumeId, q.pool, q.since, humanBytes(q.bytes)]),
        );

  const cluster = program.command("cluster").description("the cluster");

  cluster
    .command("init")
    .description(
      "create the cluster's certificate authority (ca.crt, ca.key) that node certificates are issued from",
    )
    .requiredOption("--dir <dir>", "directory for ca.crt and ca.key (the key is written mode 0600)")
    .option("--cluster <name>", "the cluster's name, written into the CA certificate", "default")
    .action(async (opts: { dir: string; cluster: string }, cmd: Command) => {
      const caFile = join(opts.dir, "ca.crt");
      if (
        await access(caFile).then(
          () => true,
          () => false,
        )
      ) {
        throw new ConflictError(
          "cluster.ca_exists",
          `${caFile} already exists: a cluster has one CA; remove it first to start over`,
        );
      }
      await saveCa(opts.dir, await createClusterCa({ cluster: opts.cluster }));
      const result = { cluster: opts.cluster, cert: caFile, key: join(opts.dir, "ca.key") };
      print(
        format(cmd),
        result,
        () => `created the CA of cluster ${opts.cluster}: ${result.cert} (key ${result.key})`,
      );
    });

  cluster
    .command("issue")
    .description(
      "issue a node's certificate straight from the CA key (where it is at hand); nodes rather join with 'join-token create' and 'sign'",
    )
    .requiredOption("--ca-dir <dir>", "directory with the cluster's ca.crt and ca.key")
    .requiredOption("--node <id>", "the node's id (its certificate names it)")
    .requiredOption("--address <ip-or-name>", "an address the node is reached at (repeatable)", collect)
    .requiredOption("--out <dir>", "the node's TLS directory: ca.crt, node.crt, node.key (mode 0600)")
    .option(
      "--valid-for <duration>",
      "how long it is valid; the agent renews it through 'cluster sign' when a third is left",
      "7d",
    )
    .action(
      async (
        opts: { caDir: string; node: string; address: string[]; out: string; validFor: string },
        cmd: Command,
      ) => {
        const identity = await issueNodeIdentity(await loadCa(opts.caDir), {
          nodeId: opts.node,
          addresses: opts.address,
          validDays: parseDuration(opts.validFor, "valid-for") / 86_400,
        });
        await saveIdentity(opts.out, identity);
        const result = { node: opts.node, dir: opts.out };
        print(format(cmd), result, () => `issued the certificate of node ${opts.node} into ${opts.out}`);
      },
    );

  registerEnrollmentCommands(cluster, { format });

  cluster
    .command("status")
    .description("nodes and volumes' health")
    .action(async (_opts, cmd: Command) => {
      const status = await client().request<{
        id: string;
        store: string;
        nodes: NodeRow[];
        volumes: { total: number; attached: number; detached: number; degraded: string[] };
        quarantine: QuarantineRecord[];
      }>("GET", "cluster");
      print(format(cmd), status, () => {
        const v = status.volumes;
        const health =
          v.degraded.length > 0
            ? `${v.degraded.length} degraded (fewer replicas in sync than repl): ${v.degraded.join(", ")}`
            : "all healthy";
        const quarantined =
          status.quarantine.length > 0
            ? `\n${status.quarantine.length} quarantined replica(s) that no volume lists, kept: 'holdfast node quarantine list'`
            : "";
        return `cluster ${status.id} (store ${status.store}): ${status.nodes.length} node(s), ${v.total} volume(s), ${v.attached} attached, ${health}${quarantined}\n\n${nodesTable(status.nodes)}`;
      });
    });

  const node = program.command("node").description("the cluster's nodes");
  node
    .command("list")
    .description("list nodes")
    .action(async (_opts, cmd: Command) => {
      const nodes = await client().request<NodeRow[]>("GET", "nodes");
      print(format(cmd), nodes, () => nodesTable(nodes));
    });
  const quarantine = node
    .command("quarantine")
    .description("replicas no volume listed when their node started: kept until purged or quarantineTtl");
  quarantine
    .command("list")
    .description("list quarantined replicas")
    .option("--node <id>", "only this node's")
    .action(async (opts: { node?: string }, cmd: Command) => {
      const all = await client().request<QuarantineRecord[]>("GET", "quarantine");
      const entries = all.filter((q) => !opts.node || q.node === opts.node);
      print(format(cmd), entries, () => quarantineTable(entries));
    });
  quarantine
    .command("purge [id]")
    .description("destroy quarantined replicas: ID (on any node, or on --node), or every one on --node")
    .option("--node <id>", "the node that holds them")
    .action(async (id: string | undefined, opts: { node?: string }, cmd: Command) => {
      const purged = await client().request<QuarantineRecord[]>("POST", "quarantine/purge", {
        ...(id !== undefined && { id }),
        ...(opts.node !== undefined && { node: opts.node }),
      });
      print(format(cmd), purged, () =>
        purged.length === 0
          ? "nothing to purge"
          : purged.map((q) => `purged the replica of ${q.volumeId} on ${q.node}`).join("\n"),
      );
    });

  const tokens = program
    .command("token")
    .description("API tokens: viewer reads; operator creates, mounts, attaches; admin also tokens and nodes");
  tokens
    .command("create")
    .description("make a token; its secret is printed this once")
    .requiredOption("--role <role>", "viewer, operator or admin")
    .option("--name <name>", "what it is for, for people")
    .option(
      "--ttl <duration>",
      "how long it lasts: seconds, or a number with s, m, h or d (default: until revoked)",
    )
    .action(async (opts: { role: string; name?: string; ttl?: string }, cmd: Command) => {
      const made = await client().request<{
        id: string;
        role: string;
        token: string;
        expiresAt: string | null;
      }>("POST", "tokens", {
        role: opts.role,
        ...(opts.name !== undefined && { name: opts.name }),
        ...(opts.ttl !== undefined && { ttlSeconds: parseDuration(opts.ttl) }),
      });
      print(format(cmd), made, () =>
        [
          `token ${made.id} (${made.role}${made.expiresAt ? `, until ${made.expiresAt}` : ""}): shown this once`,
          made.token,
        ].join("\n"),
      );
    });
  tokens
    .command("list")
    .description("list tokens (never their secrets)")
    .action(async (_opts: unknown, cmd: Command) => {
      const all = await client().request<
        Array<{ id: string; role: string; name: string; expiresAt: string | null }>
      >("GET", "tokens");
      print(format(cmd), all, () =>
        all.length === 0
          ? "no tokens (the node's own token, in <data-dir>/token, is an admin token)"
          : all
              .map((t) => `${t.id}  ${t.role.padEnd(8)}  ${t.expiresAt ?? "no expiry"}  ${t.name}`)
              .join("\n"),
      );
    });
  tokens
    .command("revoke <id>")
    .description("revoke a token, at once and on every node")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await client().request("DELETE", `tokens/${encodeURIComponent(id)}`);
      print(format(cmd), { revoked: id }, () => `revoked token ${id}`);
    });

  return program;
}
