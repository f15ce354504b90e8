import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { silentLogger } from "../../agent/src/frontend/log.js";
import { forgetClients, GaneshaServer, recoveredClients } from "../../agent/src/shared-volumes/index.js";
import { freePort } from "../support/agent-process.js";
import { NfsClient, NfsError } from "../support/nfs-client.js";

// One real Ganesha (Debian nfs-ganesha, FSAL_VFS) run by the agent's supervisor over a plain directory, and real
// NFSv4 clients (libnfs through koffi). The volume, the relay and failover come on top of this in their own tests.
const HOST = "127.0.120.1";
const VOLUME = "ganesha-t";
const CREATE = constants.O_CREAT | constants.O_WRONLY | constants.O_TRUNC;

let dir: string;
let exported: string;
let recoveryRoot: string;
let port: number;
let server: GaneshaServer;
let restarts = 0;
let probes = 0;
const restarted: (() => void)[] = [];

const url = () => `nfs://${HOST}/${VOLUME}?version=4&nfsport=${port}`;
const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");
/** Deterministic contents: no two files, and no two offsets of one, alike. */
const pattern = (length: number, seed: number) => {
  const data = Buffer.alloc(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed * 17 + (i >> 8)) & 0xff;
  return data;
};

function startServer(graceSeconds = 10): Promise<GaneshaServer> {
  return GaneshaServer.start({
    export: {
      volumeId: "00c0ffee12345678",
      volumeName: VOLUME,
      path: exported,
      recoveryRoot,
      bindAddress: HOST,
      port,
      leaseSeconds: 10,
      graceSeconds,
    },
    runDir: join(dir, "run"),
    logger: silentLogger,
    onRestart: (n) => {
      restarts = n;
      for (const resolve of restarted.splice(0)) resolve();
    },
  });
}

/** Mounts and opens through a server that may still be in its grace period, however long that lasts. */
async function mountAfterGrace(
  options: { deadlineMs?: number; clientName?: string } = {},
): Promise<{ client: NfsClient; graceRefusals: number }> {
  const until = Date.now() + (options.deadlineMs ?? 60_000);
  let graceRefusals = 0;
  for (;;) {
    const client = await NfsClient.mount(url(), { clientName: options.clientName });
    try {
      await client.writeFile(`/.probe-${++probes}`, Buffer.from("probe"), CREATE);
      return { client, graceRefusals };
    } catch (err) {
      client.close();
      if (!(err instanceof NfsError && err.status === "NFS4ERR_GRACE") || Date.now() > until) throw err;
      graceRefusals++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-ganesha-"));
  exported = join(dir, "volume", "data");
  recoveryRoot = join(dir, "volume", "nfs-recovery");
  await mkdir(exported, { recursive: true });
  port = await freePort(HOST);
  server = await startServer();
});

test.after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("Ganesha reads the generated configuration without a single complaint", async () => {
  const log = await readFile(join(dir, "run", "ganesha.log"), "utf8");
  assert.match(log, /Configuration file successfully parsed/);
  const complaints = log.split("\n").filter((line) => /Config File \(|Unknown (parameter|block)/.test(line));
  assert.equal(complaints, [], "every key in the generated file is one Ganesha 4.3 knows");
});

test("files written and closed through one client are read whole through another, as on disk", async () => {
  const { client: a } = await mountAfterGrace();
  const b = await NfsClient.mount(url());
  try {
    // Sizes around libnfs's write piece (3000 B) and the 64 KiB read piece, and one of 1 MiB.
    const sizes = [0, 1, 2999, 3000, 3001, 65_536, 100_003, 1 << 20];
    await a.mkdir("/files");
    for (const [i, size] of sizes.entries()) await a.writeFile(`/files/f${i}`, pattern(size, i), CREATE);
    for (const [i, size] of sizes.entries()) {
      const expected = sha(pattern(size, i));
      assert.is(
        sha(await b.readFile(`/files/f${i}`)),
        expected,
        `f${i} (${size} B) through the other client`,
      );
      assert.is(sha(await readFile(join(exported, "files", `f${i}`))), expected, `f${i} on disk`);
    }
    assert.equal(await b.readdir("/files"), sizes.map((_, i) => `f${i}`).sort());

    await a.rename("/files/f2", "/files/renamed");
    await a.unlink("/files/f3");
    const listed = await b.readdir("/files");
    assert.ok(
      listed.includes("renamed") && !listed.includes("f2") && !listed.includes("f3"),
      listed.join(","),
    );
    assert.is(sha(await b.readFile("/files/renamed")), sha(pattern(2999, 2)));
  } finally {
    a.close();
    b.close();
  }
});

test("POSIX errors come through as their errno", async () => {
  const client = await NfsClient.mount(url());
  try {
    const code = (work: Promise<unknown>) =>
      work.then(
        () => "no error",
        (err: NfsError) => err.code,
      );
    await client.mkdir("/errs");
    await client.writeFile("/errs/file", Buffer.from("x"), CREATE);
    assert.is(await code(client.open("/errs/missing", constants.O_RDONLY)), "ENOENT");
    assert.is(await code(client.mkdir("/errs")), "EEXIST");
    assert.is(await code(client.rmdir("/errs")), "ENOTEMPTY");
    assert.is(await code(client.unlink("/errs/missing")), "ENOENT");
  } finally {
    client.close();
  }
});

test("malformed traffic to the port is refused; Ganesha serves on, not restarted", async () => {
  const pid = server.pid;
  const garbage = [
    pattern(4096, 99), // no RPC record at all
    Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), // a record marker claiming 2 GiB, then nothing
    Buffer.concat([Buffer.from([0x80, 0, 0, 40]), pattern(40, 7)]), // a whole record that is not an RPC call
  ];
  for (const bytes of garbage) {
    await new Promise<void>((resolve) => {
      const socket = connect({ host: HOST, port }, () => socket.end(bytes));
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
      socket.resume();
    });
  }
  const client = await NfsClient.mount(url());
  try {
    assert.is(sha(await client.readFile("/files/f7")), sha(pattern(1 << 20, 7)));
  } finally {
    client.close();
  }
  assert.is(server.pid, pid, "the same Ganesha answers");
  assert.is(restarts, 0);
});

test("SIGKILL of Ganesha: the supervisor restarts it, in grace for the clients it knew; closed files are whole", async () => {
  // A client with state when Ganesha dies: its lease is fresh, so its recovery entry is there however slow the run.
  const { client: holder } = await mountAfterGrace({ clientName: "holder before SIGKILL" });
  const known = await recoveredClients(recoveryRoot);
  assert.ok(known.length > 0, "the clients so far are recorded on the volume");
  assert.ok(
    known.some((c) => c.owner === "holder before SIGKILL"),
    JSON.stringify(known),
  );
  const back = new Promise<void>((resolve) => restarted.push(resolve));
  const pid = server.pid;
  assert.ok(pid);
  process.kill(pid, "SIGKILL");
  await Promise.race([
    back,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no restart within 30 s")), 30_000).unref()),
  ]);
  assert.is.not(server.pid, pid);
  assert.is(restarts, 1);
  holder.close();

  const { client, graceRefusals } = await mountAfterGrace();
  try {
    assert.ok(graceRefusals > 0, "the restarted Ganesha held new state back for its known clients");
    for (const i of [0, 1, 4, 5, 6, 7]) {
      const size = [0, 1, 2999, 3000, 3001, 65_536, 100_003, 1 << 20][i] ?? 0;
      assert.is(sha(await client.readFile(`/files/f${i}`)), sha(pattern(size, i)), `f${i}`);
    }
  } finally {
    client.close();
  }
});

test("forgetting clients that can hold no state lets the next Ganesha leave grace at once", async () => {
  const { client: holder } = await mountAfterGrace();
  await server.stop();
  holder.close();
  assert.ok((await recoveredClients(recoveryRoot)).length > 0, "a stop keeps the recovery entries");
  const removed = await forgetClients(recoveryRoot, () => true);
  assert.ok(removed > 0);
  assert.equal(await recoveredClients(recoveryRoot), []);
  server = await startServer(60);
  const { client, graceRefusals } = await mountAfterGrace({ deadlineMs: 5_000 });
  client.close();
  assert.is(graceRefusals, 0, "no client to wait for: no grace, though the period is 60 s");
});

test.run();
