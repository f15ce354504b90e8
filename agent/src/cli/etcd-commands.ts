import { access } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { Name } from "../config/index.js";
import { ConflictError, SpecError } from "../errors.js";
import { grantClusterAccess } from "../meta/index.js";
import { createEtcdPki, etcdServerTlsArgs, issueEtcdClient, rootTls } from "../transport/index.js";
import { collect } from "./options.js";
import { type OutputFormat, print } from "./output.js";

type Context = { format: (cmd: Command) => OutputFormat };

function checkCluster(cluster: string): string {
  const parsed = Name.safeParse(cluster);
  if (!parsed.success) throw new SpecError("cluster", parsed.error.issues[0]?.message ?? "invalid");
  return cluster;
}

function checkEndpoint(url: string): string {
  if (!/^https:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(url))
    throw new SpecError("endpoint", `"${url}" is not https://HOST:PORT (etcd's clients are served over TLS)`);
  return url;
}

/**
 * `holdfast etcd ...`: etcd's PKI and roles, for whoever runs etcd. As in etcd's security guide: clients and peers
 * over TLS with a CA of etcd's own, users authenticated by their certificate's CN, and a role per Holdfast cluster
 * limited to its prefix.
 */
export function registerEtcdCommands(program: Command, ctx: Context): void {
  const etcd = program.command("etcd").description("etcd's certificates and the clusters' roles in it");

  etcd
    .command("init")
    .description("create etcd's CA, the members' certificate and root's client certificate")
    .requiredOption("--dir <dir>", "directory for them (keys mode 0600; keep it with whoever runs etcd)")
    .requiredOption(
      "--address <ip-or-name>",
      "an address etcd's members are reached at (repeatable)",
      collect,
    )
    .action(async (opts: { dir: string; address: string[] }, cmd: Command) => {
      const caFile = join(opts.dir, "ca.crt");
      const exists = await access(caFile).then(
        () => true,
        () => false,
      );
      if (exists)
        throw new ConflictError("etcd.ca_exists", `${caFile} already exists: remove it first to start over`);
      await createEtcdPki(opts.dir, opts.address);
      const result = { dir: opts.dir, etcdFlags: etcdServerTlsArgs(opts.dir) };
      print(
        ctx.format(cmd),
        result,
        () =>
          `created etcd's CA, members' and root's certificates in ${opts.dir}\nrun etcd with: ${result.etcdFlags.join(" ")}`,
      );
    });

  etcd
    .command("client")
    .description("issue the etcd client certificate of a cluster's agents (CN holdfast-<cluster>)")
    .requiredOption("--dir <dir>", "etcd's PKI directory (from 'holdfast etcd init')")
    .requiredOption("--cluster <name>", "the Holdfast cluster")
    .requiredOption("--out <dir>", "where to write ca.crt, client.crt and client.key (mode 0600)")
    .action(async (opts: { dir: string; cluster: string; out: string }, cmd: Command) => {
      const files = await issueEtcdClient(opts.dir, checkCluster(opts.cluster), opts.out);
      print(
        ctx.format(cmd),
        files,
        () =>
          `issued ${files.etcdCert}; agents take --etcd-ca ${files.etcdCa} --etcd-cert ${files.etcdCert} --etcd-key ${files.etcdKey}`,
      );
    });

  etcd
    .command("grant")
    .description(
      "give a cluster's agents a role limited to /holdfast/<cluster>/, turning etcd's auth on if off",
    )
    .requiredOption("--dir <dir>", "etcd's PKI directory: its ca.crt, and root.crt and root.key")
    .requiredOption("--endpoint <url>", "an etcd client URL, https://HOST:PORT (repeatable)", collect)
    .requiredOption("--cluster <name>", "the Holdfast cluster")
    .action(async (opts: { dir: string; endpoint: string[]; cluster: string }, cmd: Command) => {
      const granted = await grantClusterAccess(
        { endpoints: opts.endpoint.map(checkEndpoint), tls: await rootTls(opts.dir) },
        checkCluster(opts.cluster),
      );
      print(
        ctx.format(cmd),
        granted,
        () => `etcd user ${granted.user} has role ${granted.role}: readwrite on ${granted.prefix} only`,
      );
    });
}
