// What one replication stream costs in CPU on this machine, apart from everything else a replica does: 1 MiB
// frames, 8 in flight, from one process to another over loopback, with the replication port's own TLS options
// (mutual TLS 1.3, certificates from a cluster CA), and over plain TCP for comparison. A repl=3 write costs the
// engine's node two such sends and each replica's node one receive, so this is the floor under bench/fabric.ts's
// 1M figures.
//
//   node --import tsx bench/tls-stream.ts [MiB]      (default 1000 MiB per stream)

import { fork } from "node:child_process";
import { createConnection, createServer as createTcpServer, type Socket } from "node:net";
import { connect, createServer as createTlsServer } from "node:tls";
import { fileURLToPath } from "node:url";
import {
  clientTlsOptions,
  createClusterCa,
  issueNodeIdentity,
  type NodeIdentity,
  serverTlsOptions,
} from "../agent/src/transport/index.js";

const MiB = 1024 * 1024;
const IN_FLIGHT = 8;
/** The receiver answers each frame with this many bytes, as a replica answers a write. */
const ACK = 9;

const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

/** The receiving side, in its own process: counts frames, answers each, reports its CPU per MiB. */
function receive(kind: string, identity: NodeIdentity | undefined, frames: number): void {
  const serve = (socket: Socket) => {
    socket.setNoDelay(true);
    const started = process.cpuUsage();
    let bytes = 0;
    let answered = 0;
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      const complete = Math.floor(bytes / MiB);
      for (; answered < complete; answered++) socket.write(Buffer.alloc(ACK));
      if (answered === frames) process.send?.({ receiverMsPerMiB: cpuMs(started) / frames });
    });
  };
  const server =
    kind === "tls"
      ? createTlsServer(serverTlsOptions(identity as NodeIdentity), serve)
      : createTcpServer(serve);
  server.listen(0, "127.0.0.1", () => {
    const address = server.address();
    process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
  });
}

/** Sends `frames` MiB frames, IN_FLIGHT at a time, to the receiver at `port`; resolves with CPU and rate. */
async function send(kind: string, identity: NodeIdentity | undefined, port: number, frames: number) {
  const socket: Socket =
    kind === "tls"
      ? connect({ host: "127.0.0.1", port, ...clientTlsOptions(identity as NodeIdentity, "receiver") })
      : createConnection({ host: "127.0.0.1", port });
  await new Promise((resolve, reject) => {
    socket.once(kind === "tls" ? "secureConnect" : "connect", resolve);
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  const frame = Buffer.alloc(MiB, 7);
  const started = process.cpuUsage();
  const wall = performance.now();
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve) => {
    const fill = () => {
      for (; sent < frames && sent - acked < IN_FLIGHT; sent++) socket.write(frame);
    };
    let ackBytes = 0;
    socket.on("data", (chunk: Buffer) => {
      ackBytes += chunk.length;
      acked = Math.floor(ackBytes / ACK);
      if (acked === frames) resolve();
      else fill();
    });
    fill();
  });
  const senderMsPerMiB = cpuMs(started) / frames;
  const mibPerSecond = frames / ((performance.now() - wall) / 1000);
  socket.destroy();
  return { senderMsPerMiB, mibPerSecond };
}

async function measure(kind: string, identities: Record<string, NodeIdentity>, frames: number) {
  const child = fork(fileURLToPath(import.meta.url), ["receiver", kind, String(frames)], {
    execArgv: ["--import", "tsx"],
  });
  // Kept from the start: the receiver's report may come before the sender has counted its last answer.
  const inbox: Record<string, number>[] = [];
  let wake = () => {};
  child.on("message", (m) => {
    inbox.push(m as Record<string, number>);
    wake();
  });
  const next = async () => {
    while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return inbox.shift() as Record<string, number>;
  };
  child.send({ identity: identities.receiver });
  const { port = 0 } = await next();
  const sent = await send(kind, identities.sender, port, frames);
  const received = await next();
  child.kill();
  return { kind, ...sent, receiverMsPerMiB: received.receiverMsPerMiB as number };
}

if (process.argv[2] === "receiver") {
  const [, , , kind = "tls", frames = "0"] = process.argv;
  process.once("message", (m) => receive(kind, (m as { identity: NodeIdentity }).identity, Number(frames)));
} else {
  const frames = Number(process.argv[2] ?? 1000);
  const ca = await createClusterCa({ cluster: "bench" });
  const identities: Record<string, NodeIdentity> = {
    sender: await issueNodeIdentity(ca, { nodeId: "sender", addresses: ["127.0.0.1"] }),
    receiver: await issueNodeIdentity(ca, { nodeId: "receiver", addresses: ["127.0.0.1"] }),
  };
  console.log("| stream | sender CPU ms/MiB | receiver CPU ms/MiB | MiB/s |");
  console.log("| --- | --- | --- | --- |");
  for (const kind of ["tcp", "tls", "tcp", "tls"]) {
    const r = await measure(kind, identities, frames);
    console.log(
      `| ${r.kind} | ${r.senderMsPerMiB.toFixed(2)} | ${r.receiverMsPerMiB.toFixed(2)} | ${r.mibPerSecond.toFixed(0)} |`,
    );
  }
}
