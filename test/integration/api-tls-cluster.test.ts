import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createClusterCa, issueNodeIdentity, saveIdentity } from "../../agent/src/transport/index.js";
import { AgentProcess, freePort, HOLDFAST } from "../support/agent-process.js";
import { EtcdProcess } from "../support/etcd-process.js";

// Two agents of one etcd cluster, each with its certificate from the cluster CA (as `holdfast cluster issue` gives
// them): their node records advertise https, and the CLI follows a node's URL from the node list trusting the same
// CA. Net 127.0.100.0/24.
const exec = promisify(execFile);
const HOSTS = { alpha: "127.0.100.21", beta: "127.0.100.22" } as const;

let dir = "";
let etcd: EtcdProcess;
const agents: Partial<Record<keyof typeof HOSTS, AgentProcess>> = {};

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-apitls-c-"));
  etcd = await EtcdProcess.start();
  const ca = await createClusterCa({ cluster: "tlsc" });
  const caFile = join(dir, "ca.crt");
  await writeFile(caFile, ca.certPem);
  const store = (await etcd.clusterAccess("tlsc")).agentArgs;
  for (const [id, host] of Object.entries(HOSTS) as [keyof typeof HOSTS, string][]) {
    const tls = join(dir, id);
    await saveIdentity(tls, await issueNodeIdentity(ca, { nodeId: id, addresses: [host] }));
    agents[id] = await AgentProcess.start(
      [
        ...[...store, "--node-id", id],
        ...["--tls-dir", tls, "--replication", `${host}:${await freePort(host)}`],
      ],
      { host, caFile },
    );
  }
});

test.after(async () => {
  for (const agent of Object.values(agents)) await agent?.destroy();
  await etcd?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `holdfast ARGS` with `env`; never throws. */
async function cli(env: NodeJS.ProcessEnv, ...args: string[]) {
  return exec(HOLDFAST, args, { env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

/** Waits for `agent`'s audit log (written asynchronously) to show the detach of tlsc1 done; fails after 10 s. */
async function auditedDetach(agent: AgentProcess): Promise<void> {
  const file = join(agent.dir, "data/audit.log");
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const text = await readFile(file, "utf8").catch(() => "");
    if (text.split("\n").some((l) => l.includes('"url":"/v1/volumes/tlsc1/detach"') && l.includes('"done"')))
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.unreachable(
    `${agent.url} did not answer the detach:\n${await readFile(file, "utf8").catch(() => "")}`,
  );
}

test("the node records in etcd advertise https, and the CLI follows them with the cluster CA", async () => {
  const { alpha, beta } = agents as Record<keyof typeof HOSTS, AgentProcess>;
  const records = await etcd.values("/holdfast/tlsc/nodes/");
  const apis = Object.values(records)
    .map((text) => JSON.parse(text) as { id: string; api: string })
    .map((n) => [n.id, n.api])
    .sort();
  assert.equal(apis, [
    ["alpha", alpha.url],
    ["beta", beta.url],
  ]);
  assert.match(beta.url, /^https:\/\/127\.0\.100\.22:\d+$/);

  const made = await alpha.cli("volume", "create", "name=tlsc1,size=16M,repl=1");
  assert.is(made.code, 0, made.stderr);
  // A token from the store, which both nodes honour (each node's own token is its own).
  const { token } = await alpha.json<{ token: string }>(
    "token",
    "create",
    "--role",
    "operator",
    "--name",
    "tlsc",
  );
  // Asked of alpha, answered by beta: the CLI took beta's https URL from the node list and trusted it by HOLDFAST_CA.
  const detached = await cli(
    { ...alpha.env, HOLDFAST_TOKEN: token },
    "volume",
    "detach",
    "tlsc1",
    "--node",
    "beta",
  );
  assert.is(detached.code, 0, detached.stderr);
  await auditedDetach(beta);
});

test.run();
