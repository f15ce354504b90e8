import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, sh } from "../support/agent-process.js";

// A real agent process, real NBD clients (fio's nbd engine, qemu-io), real restarts (SIGTERM and SIGKILL).
let agent: AgentProcess;

test.before(async () => {
  agent = await AgentProcess.start();
});
test.after(async () => {
  await agent?.destroy();
});

interface Attached {
  nbd: string;
  epoch: number;
}

const MiB = 1024 * 1024;

function fioJob(uri: string, name: string, rw: string, bs: string, offset: number, extra: string[] = []) {
  return [
    `--name=${name}`,
    "--ioengine=nbd",
    `--uri=${uri}`,
    `--rw=${rw}`,
    `--bs=${bs}`,
    "--iodepth=16",
    `--offset=${offset}`,
    "--size=128m",
    "--verify=crc32c",
    "--randrepeat=1",
    "--randseed=1234",
    "--end_fsync=1",
    "--verify_state_save=0",
    "--output-format=json",
    ...extra,
  ];
}

function fioErrors(output: string): number {
  const report = JSON.parse(output.slice(output.indexOf("{"))) as { jobs: Array<{ error: number }> };
  return report.jobs.reduce((n, j) => n + j.error, 0);
}

const qemuIo = (uri: string, ...commands: string[]) =>
  sh("qemu-io", ["-f", "raw", ...commands.flatMap((c) => ["-c", c]), uri]);

test("fio writes 256 MiB of 4k random and 1M blocks with crc32c verify through NBD", async () => {
  await agent.json("volume", "create", "name=fiovol,size=1G");
  const { nbd } = await agent.json<Attached>("volume", "attach", "fiovol");
  assert.match(nbd, /^nbd\+unix:\/\/\/fiovol\?socket=\//);
  const random = await sh("fio", fioJob(nbd, "rand4k", "randwrite", "4k", 0));
  assert.is(fioErrors(random), 0);
  const sequential = await sh("fio", fioJob(nbd, "seq1m", "write", "1m", 128 * MiB));
  assert.is(fioErrors(sequential), 0);
});

test("data written before a clean restart and a SIGKILL reads back after re-attach", async () => {
  let { nbd } = await agent.json<Attached>("volume", "inspect", "fiovol");
  await qemuIo(nbd, "write -P 0x5a 600M 1M", "write -P 0xa5 700M 64k", "flush");
  await agent.json("volume", "detach", "fiovol");

  await agent.stop("SIGTERM");
  await agent.restart();
  const first = await agent.json<Attached>("volume", "attach", "fiovol");
  nbd = first.nbd;
  const read = await qemuIo(nbd, "read -P 0x5a 600M 1M", "read -P 0xa5 700M 64k", "read -P 0 800M 1M");
  assert.not.match(read, /Pattern verification failed/);

  await qemuIo(nbd, "write -P 0x3c 900M 1M", "flush");
  await agent.stop("SIGKILL");
  await agent.restart();
  const second = await agent.json<Attached>("volume", "attach", "fiovol");
  assert.ok(second.epoch > first.epoch, `epoch ${second.epoch} after ${first.epoch}`);
  const after = await qemuIo(
    second.nbd,
    "read -P 0x3c 900M 1M",
    "read -P 0x5a 600M 1M",
    "read -P 0xa5 700M 64k",
  );
  assert.not.match(after, /Pattern verification failed/);

  // fio's own verification of the blocks it wrote before both restarts.
  const verify = await sh("fio", fioJob(second.nbd, "rand4k", "randwrite", "4k", 0, ["--verify_only"]));
  assert.is(fioErrors(verify), 0);
  const verifySeq = await sh("fio", fioJob(second.nbd, "seq1m", "write", "1m", 128 * MiB, ["--verify_only"]));
  assert.is(fioErrors(verifySeq), 0);
});

test("a pattern check fails when the data is wrong (the check can fail)", async () => {
  const { nbd } = await agent.json<Attached>("volume", "inspect", "fiovol");
  const read = await qemuIo(nbd, "read -P 0x77 900M 4k").catch((e: Error) => e.message);
  assert.match(read, /Pattern verification failed/);
});

test("inspect reports the attachment, the replica and its state", async () => {
  const v = await agent.json<{
    name: string;
    id: string;
    size: number;
    repl: number;
    state: string;
    attachedOn: string;
    replicas: Array<{ node: string; state: string }>;
  }>("volume", "inspect", "fiovol");
  assert.is(v.name, "fiovol");
  assert.is(v.size, 1024 * MiB);
  assert.is(v.repl, 1);
  assert.is(v.state, "attached");
  assert.is(v.attachedOn, "node1");
  assert.equal(
    v.replicas.map((r) => [r.node, r.state]),
    [["node1", "in-sync"]],
  );
  const list = await agent.json<Array<{ id: string }>>("volume", "list");
  assert.equal(
    list.map((x) => x.id),
    [v.id],
  );
  await agent.json("volume", "detach", "fiovol");
  const detached = await agent.json<{ state: string; attachedOn: string | null }>(
    "volume",
    "inspect",
    "fiovol",
  );
  assert.is(detached.state, "detached");
  assert.is(detached.attachedOn, null);
});

test.run();
