import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OperationError, SpecError } from "../../agent/src/errors.js";
import { NbdServer } from "../../agent/src/frontend/nbd/index.js";
import { MemoryDevice } from "../support/memory-device.js";
import { goData, NBD, RawNbdClient } from "../support/nbd-client.js";

const MiB = 1024 * 1024;
const SIZE = 128 * MiB;
const MAX_PAYLOAD = 4 * MiB;
/** Written straight into the device first; every misbehaving client is followed by reading it back. */
const CANARY = { offset: 100 * MiB, length: 64 * 1024, byte: 0x5a };

/** A MemoryDevice that counts trims and zeroings, can fail writes, and can hold reads or flushes back. */
class TestDevice extends MemoryDevice {
  trims = 0;
  zeroes = 0;
  readsStarted = 0;
  failWrites = false;
  private readonly gates = new Map<"read" | "flush", { held: Promise<void>; release: () => void }>();

  /** Makes every `op` wait until the returned function (or `releaseAll`) is called. */
  hold(op: "read" | "flush"): () => void {
    let release = (): void => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.gates.set(op, { held, release });
    return () => {
      this.gates.delete(op);
      release();
    };
  }

  releaseAll(): void {
    for (const gate of this.gates.values()) gate.release();
    this.gates.clear();
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    this.readsStarted++;
    await this.gates.get("read")?.held;
    return super.read(offset, length);
  }

  override async write(offset: number, data: Buffer): Promise<void> {
    if (this.failWrites) throw new Error("simulated media error");
    return super.write(offset, data);
  }

  override async flush(): Promise<void> {
    await this.gates.get("flush")?.held;
    return super.flush();
  }

  override async trim(offset: number, length: number): Promise<void> {
    this.trims++;
    return super.writeZeroes(offset, length);
  }

  override async writeZeroes(offset: number, length: number): Promise<void> {
    this.zeroes++;
    return super.writeZeroes(offset, length);
  }
}

let dir: string;
let socketPath: string;
let device: TestDevice;
let server: NbdServer;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "holdfast-nbd-"));
  socketPath = join(dir, "nbd.sock");
  device = new TestDevice(SIZE);
  await device.write(CANARY.offset, Buffer.alloc(CANARY.length, CANARY.byte));
  server = new NbdServer({ device, exportName: "vol1", socketPath, maxPayload: MAX_PAYLOAD });
  await server.listen();
});

/** Clients the tests opened, closed after each test so that a failed one leaves nothing behind. */
const clients: RawNbdClient[] = [];

async function connect(path = socketPath): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(path);
  clients.push(client);
  return client;
}

async function open(
  path = socketPath,
  name = "",
): Promise<{ client: RawNbdClient; size: number; flags: number }> {
  const opened = await RawNbdClient.open(path, name);
  clients.push(opened.client);
  return opened;
}

test.after.each(() => {
  device.releaseAll();
  device.failWrites = false;
  for (const client of clients.splice(0)) client.close();
});

test.after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client as a child process without blocking the event loop, which serves it. */
function run(cmd: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: "utf8", maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function uri(path = socketPath, name = ""): string {
  return `nbd+unix:///${name}?socket=${path}`;
}

async function qemuIo(commands: string[], path = socketPath): Promise<string> {
  const result = await run("qemu-io", ["-f", "raw", uri(path), ...commands.flatMap((c) => ["-c", c])]);
  assert.is(result.code, 0, `qemu-io ${commands.join("; ")}: ${result.stdout}${result.stderr}`);
  assert.not.match(result.stdout, /failed/i);
  return result.stdout;
}

async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Proof that the server is healthy: no client left behind, and a fresh real client reads the canary. */
async function assertStillServes(): Promise<void> {
  await waitFor(() => server.connections === 0, "the misbehaving connection to be dropped");
  await qemuIo([`read -P ${CANARY.byte} ${CANARY.offset} ${CANARY.length}`]);
}

async function assertBytes(offset: number, length: number, byte: number): Promise<void> {
  const data = await device.read(offset, length);
  const wrong = data.findIndex((b) => b !== byte);
  assert.is(wrong, -1, `byte ${offset + wrong} is ${data[wrong]}, expected ${byte}`);
}

function fioJson(stdout: string): {
  jobs: { error: number; write: { io_bytes: number }; read: { io_bytes: number } }[];
} {
  // The nbd engine prints "fio: connected to NBD server" before the report.
  return JSON.parse(stdout.slice(stdout.indexOf("{")));
}

test("nbdinfo sees the export, its size, flags and block sizes", async () => {
  const result = await run("nbdinfo", ["--json", uri(socketPath, "vol1")]);
  assert.is(result.code, 0, result.stderr);
  const info = JSON.parse(result.stdout);
  assert.is(info.protocol, "newstyle-fixed");
  const [exp] = info.exports;
  assert.is(exp["export-size"], SIZE);
  assert.is(exp.is_read_only, false);
  assert.ok(exp.can_flush && exp.can_fua && exp.can_trim && exp.can_zero && exp.can_multi_conn);
  assert.is(exp.block_size_minimum, 1);
  assert.is(exp.block_size_preferred, 4096);
  assert.is(exp.block_size_maximum, MAX_PAYLOAD);
});

test("nbdinfo --list shows the configured name; the default export is served, others refused", async () => {
  const list = await run("nbdinfo", ["--list", "--json", uri()]);
  assert.is(list.code, 0, list.stderr);
  assert.equal(
    JSON.parse(list.stdout).exports.map((e: { "export-name": string }) => e["export-name"]),
    ["vol1"],
  );
  const unnamed = await run("nbdinfo", ["--size", uri()]);
  assert.is(unnamed.stdout.trim(), String(SIZE));
  const other = await run("nbdinfo", ["--size", uri(socketPath, "nope")]);
  assert.is.not(other.code, 0);
  assert.match(other.stderr, /no export named 'nope'/);
});

test("qemu-io writes patterns, reads them back, and the bytes are in the device", async () => {
  await qemuIo([
    "write -P 0xab 0 64k",
    "write -P 0xab 1M 4k",
    "write -P 0xab 3000 5000",
    "write -P 0xab 8M 4M",
  ]);
  await qemuIo(["read -P 0xab 0 64k", "read -P 0xab 1M 4k", "read -P 0xab 8M 4M", "read -P 0 40M 1M"]);
  await assertBytes(0, 64 * 1024, 0xab);
  await assertBytes(1 * MiB, 4096, 0xab);
  await assertBytes(8 * MiB, 4 * MiB, 0xab);
  await assertBytes(1 * MiB + 4096, 4096, 0);
});

test("fio 4k random writes at depth 16 and 1M sequential writes verify without errors", async () => {
  const common = [
    "--ioengine=nbd",
    `--uri=${uri()}`,
    "--size=64m",
    "--verify=crc32c",
    "--do_verify=1",
    "--verify_state_save=0",
  ];
  for (const job of [
    ["--name=rand4k", "--rw=randwrite", "--bs=4k", "--iodepth=16"],
    ["--name=seq1m", "--rw=write", "--bs=1M", "--iodepth=8"],
  ]) {
    const result = await run("fio", [...job, ...common, "--output-format=json"]);
    assert.is(result.code, 0, `fio ${job.join(" ")}: ${result.stdout}${result.stderr}`);
    const report = fioJson(result.stdout);
    assert.is(report.jobs.length, 1);
    for (const j of report.jobs) {
      assert.is(j.error, 0);
      assert.is(j.write.io_bytes, 64 * MiB);
      assert.is(j.read.io_bytes, 64 * MiB, "verify read back everything it wrote");
    }
  }
  await waitFor(() => server.connections === 0, "fio's connections to close");
});

test("flush, FUA, discard and write -z reach the device", async () => {
  const base = 80 * MiB;
  const flushes = device.flushes;
  const [trims, zeroes] = [device.trims, device.zeroes];
  await qemuIo([
    `write -P 0xcd ${base} 64k`,
    `discard ${base} 16k`,
    `write -z ${base + 32 * 1024} 16k`,
    "flush",
    `write -f -P 0xcd ${base + MiB} 4k`,
  ]);
  assert.ok(device.trims > trims, "a TRIM reached the device");
  assert.ok(device.zeroes > zeroes, "a WRITE_ZEROES reached the device");
  assert.ok(device.flushes >= flushes + 2, "the flush and the FUA write each flushed the device");
  await assertBytes(base, 16 * 1024, 0);
  await assertBytes(base + 16 * 1024, 16 * 1024, 0xcd);
  await assertBytes(base + 32 * 1024, 16 * 1024, 0);
  await assertBytes(base + 48 * 1024, 16 * 1024, 0xcd);
  await assertBytes(base + MiB, 4096, 0xcd);
});

test("raw client: read, write, flush, trim and write-zeroes with the spec's replies", async () => {
  const { client, size, flags } = await open(socketPath, "vol1");
  assert.is(size, SIZE);
  assert.is(flags & NBD.FLAG_READ_ONLY, 0);
  const payload = Buffer.alloc(8192, 0x77);
  const offset = 90 * MiB;
  assert.is((await client.request({ type: NBD.CMD_WRITE, cookie: 1n, offset, payload })).error, 0);
  const read = await client.request({
    type: NBD.CMD_READ,
    cookie: 0xffffffff_fffffffen,
    offset,
    length: 8192,
  });
  assert.is(read.error, 0);
  assert.ok(read.data?.equals(payload));
  assert.is((await client.request({ type: NBD.CMD_FLUSH, cookie: 3n })).error, 0);
  assert.is((await client.request({ type: NBD.CMD_TRIM, cookie: 4n, offset, length: 4096 })).error, 0);
  assert.is(
    (await client.request({ type: NBD.CMD_WRITE_ZEROES, cookie: 5n, offset: offset + 4096, length: 4096 }))
      .error,
    0,
  );
  await assertBytes(offset, 8192, 0);
  client.sendRequest({ type: NBD.CMD_DISC, cookie: 6n });
  await client.expectClosed();
  await assertStillServes();
});

test("bad client flags: disconnected", async () => {
  const client = await connect();
  client.sendClientFlags(0x80);
  await client.expectClosed();
  await assertStillServes();
});

test("bad option magic: disconnected", async () => {
  const client = await connect();
  client.sendClientFlags(3);
  client.sendOption(NBD.OPT_GO, goData(""), undefined, "IHAVEOPX");
  await client.expectClosed();
  await assertStillServes();
});

test("unknown options and structured replies get ERR_UNSUP and negotiation continues", async () => {
  const client = await connect();
  client.sendClientFlags(3);
  client.sendOption(0x4242, Buffer.from("whatever"));
  assert.equal((await client.readOptionReply()).type, NBD.REP_ERR_UNSUP);
  client.sendOption(NBD.OPT_STRUCTURED_REPLY);
  assert.equal((await client.readOptionReply()).type, NBD.REP_ERR_UNSUP);
  client.sendOption(NBD.OPT_LIST, Buffer.from("junk"));
  assert.equal((await client.readOptionReply()).type, NBD.REP_ERR_INVALID);
  client.sendOption(NBD.OPT_GO, Buffer.from([0, 0, 0, 9, 1]));
  assert.equal((await client.readOptionReply()).type, NBD.REP_ERR_INVALID);
  client.sendOption(NBD.OPT_GO, goData("nope"));
  assert.equal((await client.readOptionReply()).type, NBD.REP_ERR_UNKNOWN);
  await client.go("vol1");
  const read = await client.request({ type: NBD.CMD_READ, cookie: 1n, offset: CANARY.offset, length: 512 });
  assert.ok(read.data?.equals(Buffer.alloc(512, CANARY.byte)));
  client.close();
  await assertStillServes();
});

test("an option longer than any valid one: ERR_TOO_BIG without reading it, then disconnected", async () => {
  const client = await connect();
  client.sendClientFlags(3);
  client.sendOption(NBD.OPT_GO, Buffer.alloc(0), 0xfffffff0);
  const reply = await client.readOptionReply();
  assert.is(reply.type, NBD.REP_ERR_TOO_BIG);
  await client.expectClosed();
  await assertStillServes();
});

test("NBD_OPT_ABORT is acknowledged and ends the session", async () => {
  const client = await connect();
  client.sendClientFlags(3);
  client.sendOption(NBD.OPT_ABORT);
  assert.is((await client.readOptionReply()).type, NBD.REP_ACK);
  await client.expectClosed();
  await assertStillServes();
});

test("NBD_OPT_EXPORT_NAME: 124 zero bytes unless NO_ZEROES, and an unknown name hangs up", async () => {
  const client = await connect();
  client.sendClientFlags(1);
  client.sendOption(NBD.OPT_EXPORT_NAME, Buffer.from("vol1"));
  const reply = await client.read(134);
  assert.is(Number(reply.readBigUInt64BE(0)), SIZE);
  assert.ok(reply.subarray(10).equals(Buffer.alloc(124)));
  const read = await client.request({ type: NBD.CMD_READ, cookie: 1n, offset: CANARY.offset, length: 16 });
  assert.ok(read.data?.equals(Buffer.alloc(16, CANARY.byte)));
  client.close();

  const refused = await connect();
  refused.sendClientFlags(3);
  refused.sendOption(NBD.OPT_EXPORT_NAME, Buffer.from("nope"));
  await refused.expectClosed();
  await assertStillServes();
});

test("bad request magic: disconnected", async () => {
  const { client } = await open();
  client.sendRequest({ type: NBD.CMD_READ, cookie: 1n, length: 512, magic: 0x12560953 });
  await client.expectClosed();
  await assertStillServes();
});

test("unknown command and unknown command flag: EINVAL, and the connection carries on", async () => {
  const { client } = await open();
  assert.is((await client.request({ type: 99, cookie: 1n, length: 512 })).error, NBD.EINVAL);
  assert.is(
    (await client.request({ type: NBD.CMD_READ, cookie: 2n, length: 512, flags: 1 << 3 })).error,
    NBD.EINVAL,
  );
  const read = await client.request({ type: NBD.CMD_READ, cookie: 3n, offset: CANARY.offset, length: 512 });
  assert.is(read.error, 0);
  client.close();
  await assertStillServes();
});

test("requests past the end: EINVAL for read and trim, ENOSPC for writes, payload consumed", async () => {
  const { client } = await open();
  const end = SIZE - 4096;
  assert.is(
    (await client.request({ type: NBD.CMD_READ, cookie: 1n, offset: end, length: 8192 })).error,
    NBD.EINVAL,
  );
  assert.is(
    (await client.request({ type: NBD.CMD_READ, cookie: 2n, offset: 2 ** 63, length: 1 })).error,
    NBD.EINVAL,
  );
  const payload = Buffer.alloc(8192, 0xee);
  assert.is(
    (await client.request({ type: NBD.CMD_WRITE, cookie: 3n, offset: end, payload })).error,
    NBD.ENOSPC,
  );
  assert.is(
    (await client.request({ type: NBD.CMD_TRIM, cookie: 4n, offset: end, length: 8192 })).error,
    NBD.EINVAL,
  );
  const zero = await client.request({ type: NBD.CMD_WRITE_ZEROES, cookie: 5n, offset: end, length: 8192 });
  assert.is(zero.error, NBD.ENOSPC);
  assert.is((await client.request({ type: NBD.CMD_READ, cookie: 6n, offset: end, length: 4096 })).error, 0);
  await assertBytes(end, 4096, 0);
  client.close();
  await assertStillServes();
});

test("oversized READ: EINVAL; oversized WRITE: skipped with EINVAL, or a hang-up past 32 MiB", async () => {
  const { client } = await open();
  const read = await client.request({ type: NBD.CMD_READ, cookie: 1n, length: MAX_PAYLOAD + 1 });
  assert.is(read.error, NBD.EINVAL);
  const payload = Buffer.alloc(MAX_PAYLOAD + 4096, 0xee);
  const write = await client.request({ type: NBD.CMD_WRITE, cookie: 2n, offset: CANARY.offset, payload });
  assert.is(write.error, NBD.EINVAL);
  await assertBytes(CANARY.offset, CANARY.length, CANARY.byte);
  assert.is((await client.request({ type: NBD.CMD_READ, cookie: 3n, offset: 0, length: 4096 })).error, 0);
  client.sendRequest({ type: NBD.CMD_WRITE, cookie: 4n, length: 0xffffffff });
  await client.expectClosed();
  await assertStillServes();
});

test("a client that disconnects mid-request leaves the device untouched", async () => {
  const offset = 96 * MiB;
  const headerOnly = await open();
  headerOnly.client.sendRequest({ type: NBD.CMD_WRITE, cookie: 1n, offset, length: 65536 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  headerOnly.client.close();
  const halfPayload = await open();
  halfPayload.client.sendRequest({ type: NBD.CMD_WRITE, cookie: 1n, offset, length: 65536 });
  halfPayload.client.socket.write(Buffer.alloc(32768, 0xee));
  await new Promise((resolve) => setTimeout(resolve, 20));
  halfPayload.client.close();
  const halfHeader = await open();
  halfHeader.client.socket.write(Buffer.from([0x25, 0x60, 0x95, 0x13, 0, 0]));
  halfHeader.client.close();
  await assertStillServes();
  await assertBytes(offset, 65536, 0);
});

test("a device error becomes EIO for that request only", async () => {
  const { client } = await open();
  device.failWrites = true;
  const payload = Buffer.alloc(4096);
  const write = await client.request({ type: NBD.CMD_WRITE, cookie: 1n, offset: CANARY.offset, payload });
  assert.is(write.error, NBD.EIO);
  device.failWrites = false;
  const read = await client.request({ type: NBD.CMD_READ, cookie: 2n, offset: CANARY.offset, length: 4096 });
  assert.ok(read.data?.equals(Buffer.alloc(4096, CANARY.byte)));
  client.close();
  await assertStillServes();
});

test("pipelined requests: replies matched by cookie, out of order when the device is slower", async () => {
  const { client } = await open();
  const offset = 92 * MiB;
  for (let i = 0; i < 64; i++) {
    client.sendRequest({
      type: NBD.CMD_WRITE,
      cookie: BigInt(i),
      offset: offset + i * 4096,
      payload: Buffer.alloc(4096, i),
    });
  }
  const cookies = new Set<bigint>();
  for (let i = 0; i < 64; i++) {
    const reply = await client.readReply();
    assert.is(reply.error, 0);
    cookies.add(reply.cookie);
  }
  assert.is(cookies.size, 64);
  await assertBytes(offset + 63 * 4096, 4096, 63);

  const releaseReads = device.hold("read");
  client.sendRequest({ type: NBD.CMD_READ, cookie: 100n, offset, length: 4096 });
  client.sendRequest({ type: NBD.CMD_WRITE, cookie: 101n, offset, payload: Buffer.alloc(4096, 0x42) });
  assert.is((await client.readReply()).cookie, 101n);
  releaseReads();
  assert.is((await client.readReply()).cookie, 100n);
  await client.read(4096);

  // A flush waits for the device, but requests sent after it do not wait for the flush.
  const releaseFlush = device.hold("flush");
  client.sendRequest({ type: NBD.CMD_FLUSH, cookie: 200n });
  client.sendRequest({ type: NBD.CMD_WRITE, cookie: 201n, offset, payload: Buffer.alloc(4096, 0x43) });
  assert.is((await client.readReply()).cookie, 201n);
  releaseFlush();
  assert.is((await client.readReply()).cookie, 200n);
  client.close();
  await assertStillServes();
});

test("backpressure: at most 256 requests reach the device at once, and all are answered", async () => {
  const { client } = await open();
  const release = device.hold("read");
  const started = device.readsStarted;
  for (let i = 0; i < 300; i++)
    client.sendRequest({ type: NBD.CMD_READ, cookie: BigInt(i), offset: i * 512, length: 512 });
  await waitFor(() => device.readsStarted - started === 256, "256 reads to start");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.is(device.readsStarted - started, 256);
  release();
  for (let i = 0; i < 300; i++) {
    assert.is((await client.readReply()).error, 0);
    await client.read(512);
  }
  client.close();
  await assertStillServes();
});

test("NBD_CMD_DISC waits for in-flight requests, then closes", async () => {
  const { client } = await open();
  const release = device.hold("read");
  client.sendRequest({ type: NBD.CMD_READ, cookie: 7n, offset: CANARY.offset, length: 4096 });
  client.sendRequest({ type: NBD.CMD_DISC, cookie: 8n });
  await new Promise((resolve) => setTimeout(resolve, 20));
  release();
  assert.is((await client.readReply()).cookie, 7n);
  assert.ok((await client.read(4096)).equals(Buffer.alloc(4096, CANARY.byte)));
  await client.expectClosed();
  await assertStillServes();
});

test("a read-only export advertises READ_ONLY and refuses writes with EPERM", async () => {
  const path = join(dir, "ro.sock");
  const ro = new NbdServer({ device, socketPath: path, readOnly: true });
  await ro.listen();
  try {
    const { client, flags } = await open(path);
    assert.is(flags & NBD.FLAG_READ_ONLY, NBD.FLAG_READ_ONLY);
    const at = { offset: CANARY.offset, length: 512 };
    const write = await client.request({
      type: NBD.CMD_WRITE,
      cookie: 1n,
      ...at,
      payload: Buffer.alloc(512),
    });
    assert.is(write.error, NBD.EPERM);
    assert.is((await client.request({ type: NBD.CMD_TRIM, cookie: 2n, ...at })).error, NBD.EPERM);
    assert.is((await client.request({ type: NBD.CMD_WRITE_ZEROES, cookie: 3n, ...at })).error, NBD.EPERM);
    assert.is((await client.request({ type: NBD.CMD_READ, cookie: 4n, ...at })).error, 0);
    client.close();
    await assertBytes(CANARY.offset, CANARY.length, CANARY.byte);
  } finally {
    await ro.close();
  }
});

test("close() waits for in-flight requests, disconnects clients and removes the socket file", async () => {
  const path = join(dir, "closing.sock");
  const closing = new NbdServer({ device, socketPath: path });
  await closing.listen();
  const idle = await connect(path);
  const { client } = await open(path);
  assert.is(closing.connections, 2);
  const release = device.hold("read");
  const started = device.readsStarted;
  client.sendRequest({ type: NBD.CMD_READ, cookie: 9n, offset: CANARY.offset, length: 4096 });
  await waitFor(() => device.readsStarted > started, "the read to start");
  let closed = false;
  const done = closing.close().then(() => {
    closed = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.is(closed, false, "close() waits for the in-flight read");
  release();
  await done;
  assert.is((await client.readReply()).cookie, 9n);
  await client.read(4096);
  await client.expectClosed();
  await idle.expectClosed();
  assert.is(closing.connections, 0);
  assert.is(existsSync(path), false);
});

test("listen() replaces a stale socket file but not a live one", async () => {
  const path = join(dir, "stale.sock");
  // A socket bound by a process that then died, as an agent killed with SIGKILL leaves behind.
  const bound = spawnSync("python3", [
    "-c",
    `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`,
  ]);
  assert.is(bound.status, 0, String(bound.stderr));
  assert.ok(existsSync(path));
  const revived = new NbdServer({ device, socketPath: path });
  await revived.listen();
  try {
    const result = await run("nbdinfo", ["--size", uri(path)]);
    assert.is(result.stdout.trim(), String(SIZE));
    const rival = new NbdServer({ device, socketPath: path });
    try {
      await rival.listen();
      assert.unreachable("a second server took a live socket");
    } catch (err) {
      assert.instance(err, OperationError);
    }
  } finally {
    await revived.close();
  }
});

test("options are checked up front", () => {
  assert.throws(
    () => new NbdServer({ device }),
    (err: unknown) => err instanceof SpecError,
  );
  assert.throws(
    () => new NbdServer({ device, socketPath: "/x", maxPayload: 100 }),
    (err: unknown) => err instanceof SpecError && /maxPayload/.test(err.message),
  );
});

test("a TCP listener serves too", async () => {
  const probe = net.createServer();
  const port = await new Promise<number>((resolve) => {
    probe.listen(0, "127.0.0.1", () => resolve((probe.address() as net.AddressInfo).port));
  });
  await new Promise((resolve) => probe.close(resolve));
  const tcp = new NbdServer({ device, host: "127.0.0.1", port });
  await tcp.listen();
  try {
    const result = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${port}/`]);
    assert.is(result.stdout.trim(), String(SIZE), result.stderr);
  } finally {
    await tcp.close();
  }
});

test.run();
