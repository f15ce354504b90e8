import type { Command } from "commander";
import { SpecError } from "../errors.js";
import { type DevState, devDown, devStart, devStop, devUp } from "./dev-cluster.js";
import { type OutputFormat, print, table } from "./output.js";

type Context = { format: (cmd: Command) => OutputFormat };

/** What `dev up --output json` prints: the etcd URL, the shared token, and each node. */
function summary(state: DevState) {
  return {
    etcd: state.etcd.url,
    token: state.token,
    ca: state.ca,
    nodes: state.nodes.map((n) => ({
      id: n.id,
      api: n.api,
      pid: n.pid,
      zone: n.zone,
      plugin: n.plugin,
      csi: n.csi,
    })),
  };
}

function describe(state: DevState): string {
  const nodes = table(
    ["NODE", "API", "ZONE", "PID"],
    state.nodes.map((n) => [n.id, n.api, n.zone, n.pid]),
  );
  const first = state.nodes[0]?.api ?? "";
  return `etcd ${state.etcd.url}\n\n${nodes}\n\nexport HOLDFAST_API=${first} HOLDFAST_TOKEN=${state.token} HOLDFAST_CA=${state.ca}`;
}

interface DevUpFlags {
  dir: string;
  nodes: string;
  leaseTtl: string;
  net: string;
  replicaTimeout: string;
}

const SIGNALS = ["SIGTERM", "SIGKILL", "SIGINT"] as const;

/** `holdfast dev ...`: a local cluster of real processes (etcd and agents on 127.0.0.x) for demos and tests. */
export function registerDevCommands(program: Command, ctx: Context): void {
  const dev = program
    .command("dev")
    .description("a local cluster: a real etcd and agents on 127.0.0.11, .12, ...");

  dev
    .command("up")
    .description("start etcd and N agents, each with its own data dir and zone; wait until all are up")
    .requiredOption("--dir <dir>", "directory for all data and logs")
    .option("--nodes <n>", "number of agents (1 to 9)", "3")
    .option("--lease-ttl <seconds>", "seconds until a silent node counts as down", "5")
    .option("--net <a.b.c>", "loopback /24 to use: etcd on <net>.10, agents on <net>.11, ...", "127.0.0")
    .option(
      "--replica-timeout <seconds>",
      "seconds a node may be down before its replicas are rebuilt",
      "600",
    )
    .action(async (opts: DevUpFlags, cmd: Command) => {
      const nodes = Number(opts.nodes);
      const leaseTtl = Number(opts.leaseTtl);
      if (!Number.isInteger(leaseTtl) || leaseTtl < 2)
        throw new SpecError("lease-ttl", "must be a whole number of seconds, at least 2");
      const replicaTimeout = Number(opts.replicaTimeout);
      if (!Number.isInteger(replicaTimeout) || replicaTimeout < 1)
        throw new SpecError("replica-timeout", "must be a whole number of seconds, at least 1");
      const state = await devUp({ dir: opts.dir, nodes, leaseTtl, net: opts.net, replicaTimeout });
      print(ctx.format(cmd), summary(state), () => describe(state));
    });

  dev
    .command("stop")
    .description("stop one node, keeping its data")
    .requiredOption("--dir <dir>", "the dev cluster's directory")
    .requiredOption("--node <id>", "node to stop")
    .option("--signal <signal>", `${SIGNALS.join(", ")}; SIGKILL simulates a crash`, "SIGTERM")
    .action(async (opts: { dir: string; node: string; signal: string }, cmd: Command) => {
      if (!SIGNALS.includes(opts.signal as (typeof SIGNALS)[number])) {
        throw new SpecError("signal", `must be one of ${SIGNALS.join(", ")}, not "${opts.signal}"`);
      }
      const state = await devStop(opts.dir, opts.node, opts.signal as NodeJS.Signals);
      print(ctx.format(cmd), summary(state), () => `stopped ${opts.node} with ${opts.signal}`);
    });

  dev
    .command("start")
    .description("start a stopped node again, with its data")
    .requiredOption("--dir <dir>", "the dev cluster's directory")
    .requiredOption("--node <id>", "node to start")
    .action(async (opts: { dir: string; node: string }, cmd: Command) => {
      const state = await devStart(opts.dir, opts.node);
      print(ctx.format(cmd), summary(state), () => `started ${opts.node}`);
    });

  dev
    .command("down")
    .description("stop every node and etcd, and remove the directory")
    .requiredOption("--dir <dir>", "the dev cluster's directory")
    .action(async (opts: { dir: string }, cmd: Command) => {
      await devDown(opts.dir);
      print(ctx.format(cmd), { down: opts.dir }, () => `dev cluster in ${opts.dir} stopped and removed`);
    });
}
