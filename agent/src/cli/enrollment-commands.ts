import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import pino from "pino";
import { loadStoreSettings, Name } from "../config/index.js";
import {
  createJoinToken,
  type EnrollmentVerifier,
  IdentityDocumentVerifier,
  JoinTokenVerifier,
  RenewalVerifier,
  revoke,
  type SignOutcome,
  signPending,
} from "../enrollment/index.js";
import { SpecError } from "../errors.js";
import { badRecordReporter, type MetaStore, openEtcdStore } from "../meta/index.js";
import { loadCa } from "../transport/index.js";
import { parseDuration } from "./options.js";
import { type OutputFormat, print } from "./output.js";

/** The store a `cluster` command acts on, and the cluster's key prefix in it. */
async function openStore(opts: {
  store: string;
  cluster: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdPlainHttp?: boolean;
}): Promise<{ store: MetaStore; root: string }> {
  const settings = loadStoreSettings(opts);
  if (settings.store === "local")
    throw new SpecError(
      "store",
      "must be etcds://HOST:PORT[,HOST:PORT...]: enrollment goes through the cluster's etcd",
    );
  const cluster = Name.safeParse(opts.cluster);
  if (!cluster.success) throw new SpecError("cluster", cluster.error.issues[0]?.message ?? "invalid");
  const root = `/holdfast/${opts.cluster}`;
  return { store: await openEtcdStore(settings, `${root}/`), root };
}

const storeOptions = (cmd: Command) =>
  cmd
    .requiredOption("--store <etcds://host:port>", "the cluster's etcd: etcds://HOST:PORT[,HOST:PORT]")
    .option("--etcd-ca <file>", "PEM file of the CA that signed etcd's certificates")
    .option("--etcd-cert <file>", "PEM file of an etcd client certificate with the cluster's role")
    .option("--etcd-key <file>", "PEM file of its key")
    .option("--etcd-plain-http", "allow etcd:// (plain HTTP, no client certificate): a lab only")
    .option("--cluster <name>", "the cluster's name in the store", "default");

const describe = (o: SignOutcome) =>
  "signed" in o
    ? `signed node ${o.node}'s certificate ${o.signed} (${o.proof}), until ${o.notAfter}`
    : `refused node ${o.node}: ${o.refused}`;

/**
 * `holdfast cluster join-token create`, `cluster sign` and `cluster revoke`: run where the operator has the store (and,
 * for `sign`, the CA key); nodes never hold the CA key (docs/decisions/0010-trust-boundary.md).
 */
export function registerEnrollmentCommands(
  cluster: Command,
  { format }: { format: (cmd: Command) => OutputFormat },
): void {
  const joinToken = cluster
    .command("join-token")
    .description("one-time tokens a node joins the cluster with");
  storeOptions(
    joinToken
      .command("create")
      .description("make a join token for one node; printed this once, stored only as a public key")
      .requiredOption("--node <id>", "the node it enrolls")
      .option("--ttl <duration>", "how long it may be used: seconds, or a number with s, m, h or d", "1h"),
  ).action(async (opts: { node: string; ttl: string; store: string; cluster: string }, cmd: Command) => {
    const ttlSeconds = parseDuration(opts.ttl);
    const { store, root } = await openStore(opts);
    try {
      const made = await createJoinToken(store, root, { node: opts.node, ttlSeconds });
      print(format(cmd), { id: made.id, node: made.node, expiresAt: made.expiresAt, token: made.token }, () =>
        [
          `join token ${made.id} for node ${made.node}, until ${made.expiresAt}: shown this once`,
          made.token,
        ].join("\n"),
      );
    } finally {
      await store.close();
    }
  });

  storeOptions(
    cluster
      .command("sign")
      .description("answer nodes' certificate requests with the cluster CA: once, or in a loop with --watch")
      .requiredOption("--ca-dir <dir>", "directory with the cluster's ca.crt and ca.key")
      .option("--watch", "keep answering, every --interval, until stopped")
      .option("--interval <duration>", "how often --watch looks for requests", "1s")
      .option("--valid-for <duration>", "how long each certificate is valid", "7d")
      .option(
        "--identity-document-key <file>",
        "PEM public key or certificate that signs cloud identity documents (on AWS, the region's certificate for the instance-identity signature); such documents then enroll their instance",
      ),
  ).action(
    async (
      opts: {
        caDir: string;
        watch?: boolean;
        interval: string;
        validFor: string;
        identityDocumentKey?: string;
        store: string;
        cluster: string;
      },
      cmd: Command,
    ) => {
      const validDays = parseDuration(opts.validFor, "valid-for") / 86_400;
      const intervalMs = parseDuration(opts.interval, "interval") * 1000;
      if (validDays <= 0) throw new SpecError("valid-for", "must be longer than 0 s");
      const ca = await loadCa(opts.caDir);
      const verifiers: EnrollmentVerifier[] = [new JoinTokenVerifier(), new RenewalVerifier()];
      if (opts.identityDocumentKey) {
        let pem: string;
        try {
          pem = await readFile(opts.identityDocumentKey, "utf8");
        } catch (err) {
          throw new SpecError("identity-document-key", `cannot read (${(err as Error).message})`);
        }
        verifiers.push(new IdentityDocumentVerifier(pem));
      }
      const { store, root } = await openStore(opts);
      const report = badRecordReporter(pino({ level: "warn" }, pino.destination(2)));
      const pass = async () => {
        const outcomes = await signPending({ store, root, ca, verifiers, validDays, report });
        for (const o of outcomes) print(format(cmd), o, () => describe(o));
        return outcomes;
      };
      try {
        if (!opts.watch) {
          const outcomes = await pass();
          if (outcomes.length === 0 && format(cmd) === "table") process.stdout.write("no pending requests\n");
          return;
        }
        let stop = false;
        const stopped = new Promise<void>((resolve) => {
          const end = () => {
            stop = true;
            resolve();
          };
          process.once("SIGTERM", end);
          process.once("SIGINT", end);
        });
        process.stderr.write(`signing requests of cluster ${opts.cluster} every ${opts.interval}\n`);
        while (!stop) {
          try {
            await pass();
          } catch (err) {
            // The store may be out for a while: the loop outlives it.
            process.stderr.write(`sign: ${(err as Error).message}\n`);
          }
          await Promise.race([stopped, new Promise((r) => setTimeout(r, intervalMs))]);
        }
      } finally {
        await store.close();
      }
    },
  );

  storeOptions(
    cluster
      .command("revoke")
      .description("revoke a node's certificates (or one serial): every node refuses them from its next look")
      .option("--node <id>", "every unexpired certificate the signer issued this node")
      .option("--serial <hex>", "one certificate's serial"),
  ).action(async (opts: { node?: string; serial?: string; store: string; cluster: string }, cmd: Command) => {
    if ((opts.node === undefined) === (opts.serial === undefined))
      throw new SpecError("node", "give --node ID or --serial HEX, one of them");
    const { store, root } = await openStore(opts);
    try {
      const revoked = await revoke(store, root, opts);
      print(format(cmd), revoked, () =>
        revoked.map((r) => `revoked certificate ${r.serial}${r.node ? ` of node ${r.node}` : ""}`).join("\n"),
      );
    } finally {
      await store.close();
    }
  });
}
