import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess, sh } from "../support/agent-process.js";
import { EtcdProcess } from "../support/etcd-process.js";

// A real agent on a real etcd: metadata outlives the agent, and an etcd outage fails control operations at
// once while an attached volume keeps serving I/O for as long as its node's lease certainly lives. The lease TTL
// is 60 s here, so that the I/O falls well inside it on a loaded machine too (with the default 5 s, a slow CLI
// let the engine suspend first, and the test waited on I/O that was rightly held until etcd came back).
let etcd: EtcdProcess;
let agent: AgentProcess;

test.before(async () => {
  etcd = await EtcdProcess.start();
  agent = await AgentProcess.start([...(await etcd.clusterAccess("t1")).agentArgs, ...["--lease-ttl", "60"]]);
});
test.after(async () => {
  await agent?.destroy();
  await etcd?.destroy();
});

const qemuIo = (uri: string, ...commands: string[]) =>
  sh("qemu-io", ["-f", "raw", ...commands.flatMap((c) => ["-c", c]), uri]);

test("volumes live in etcd under the cluster's prefix and outlive a SIGKILLed agent", async () => {
  const created = await agent.json<{ id: string }>("volume", "create", "name=etcdvol,size=256M");
  const keys = (await etcd.keys("/holdfast/t1/")).join("\n");
  assert.match(keys, new RegExp(`/holdfast/t1/volumes/${created.id}`));
  assert.match(keys, /\/holdfast\/t1\/names\/etcdvol/);
  const { nbd } = await agent.json<{ nbd: string }>("volume", "attach", "etcdvol");
  await qemuIo(nbd, "write -P 0x61 0 1M", "flush");
  await agent.stop("SIGKILL");
  await agent.restart();
  const v = await agent.json<{ id: string; state: string }>("volume", "inspect", "etcdvol");
  assert.is(v.id, created.id);
  assert.is(v.state, "detached", "the killed agent's attachment was released at restart");
  const again = await agent.json<{ nbd: string; epoch: number }>("volume", "attach", "etcdvol");
  assert.is(again.epoch, 2);
  await qemuIo(again.nbd, "read -P 0x61 0 1M");
});

test("with etcd down, control operations fail at once naming etcd; attached I/O goes on", async () => {
  const { nbd } = await agent.json<{ nbd: string }>("volume", "inspect", "etcdvol");
  await etcd.stop("SIGKILL");
  const started = Date.now();
  const create = await agent.cli("volume", "create", "name=during-outage,size=1G");
  assert.is(create.code, 1);
  assert.match(create.stderr, /metadata store \(etcd at https:\/\/127\.0\.0\.1:\d+\) is unavailable/);
  assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
  // The data path does not touch etcd: reads and writes on the attached volume keep working.
  await qemuIo(nbd, "write -P 0x62 2M 1M", "flush", "read -P 0x61 0 1M", "read -P 0x62 2M 1M");
  await etcd.resume();
  let created = false;
  for (let i = 0; i < 30 && !created; i++) {
    created = (await agent.cli("volume", "create", "name=after-outage,size=1G")).code === 0;
    if (!created) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(created, "create works again once etcd is back");
  await agent.json("volume", "detach", "etcdvol");
});

test.run();
