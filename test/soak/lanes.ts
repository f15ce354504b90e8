import { NBD, RawNbdClient } from "../support/nbd-client.js";
import type { Random } from "./random.js";
import { BLOCK, blockContent, type RegisterModel } from "./register-model.js";

/** How long one request may go unanswered before its lane counts it indeterminate and reconnects. */
const REQUEST_TIMEOUT_MS = 15_000;

/** What the lanes did, by operation and outcome. */
export interface LaneCounts {
  writesAcknowledged: number;
  writesIndeterminate: number;
  readsChecked: number;
  readsFailed: number;
  flushes: number;
  reconnects: number;
}

export interface LaneOptions {
  /** The blocks this lane alone writes and reads (each block is one client's register). */
  blocks: number[];
  /** The NBD socket of the node the volume is attached on now. */
  socket: () => Promise<string>;
  exportName: string;
  model: RegisterModel;
  random: Random;
  counts: LaneCounts;
}

/**
 * One client: a single NBD connection doing one request at a time on its own blocks (writes, reads checked against
 * the model, some flushes). A request that fails or goes unanswered leaves its write indeterminate; the lane then
 * drops the connection and reconnects to wherever the volume is attached by then (an engine that answers with an
 * error has usually lost the volume to another node).
 */
export class Lane {
  private stopped = false;
  private client?: RawNbdClient;
  private cookie = 1n;
  private readonly seqs = new Map<number, number>();
  private loop?: Promise<void>;

  constructor(private readonly options: LaneOptions) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops after the request in flight, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.client?.close();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        this.client ??= await this.connect();
        await this.step(this.client);
      } catch {
        this.client?.close();
        this.client = undefined;
        this.options.counts.reconnects++;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async connect(): Promise<RawNbdClient> {
    const { client } = await RawNbdClient.open(await this.options.socket(), this.options.exportName);
    return client;
  }

  private async step(client: RawNbdClient): Promise<void> {
    const { random, model, counts, blocks } = this.options;
    const block = random.pick(blocks);
    const roll = random.next();
    if (roll < 0.55) {
      const seq = (this.seqs.get(block) ?? 0) + 1;
      this.seqs.set(block, seq);
      model.invoked(block, seq);
      const error = await this.request(client, NBD.CMD_WRITE, block, blockContent(block, seq)).catch(
        (err) => {
          counts.writesIndeterminate++;
          throw err;
        },
      );
      if (error !== 0) {
        counts.writesIndeterminate++;
        throw new Error(`write refused with NBD error ${error}`);
      }
      model.acknowledged(block, seq);
      counts.writesAcknowledged++;
    } else if (roll < 0.95) {
      const data = await this.read(client, block).catch((err) => {
        counts.readsFailed++;
        throw err;
      });
      if (!data) {
        counts.readsFailed++;
        throw new Error("read refused");
      }
      model.read(block, data);
      counts.readsChecked++;
    } else {
      const error = await this.request(client, NBD.CMD_FLUSH, 0);
      if (error !== 0) throw new Error(`flush refused with NBD error ${error}`);
      counts.flushes++;
    }
  }

  /** One request and its reply header; rejects if the connection dies or the reply is late. */
  private async request(
    client: RawNbdClient,
    type: number,
    block: number,
    payload?: Buffer,
  ): Promise<number> {
    return request(client, this.cookie++, type, block, payload);
  }

  private read(client: RawNbdClient, block: number): Promise<Buffer | undefined> {
    return readBlock(client, this.cookie++, block);
  }
}

/** Blocks lie this far apart, so that 128 of them spread over every region of a 64 MiB volume. */
export const BLOCK_SPACING = 512 * 1024;

/** One request and its reply header's error; rejects if the connection dies or the reply is late. */
async function request(
  client: RawNbdClient,
  cookie: bigint,
  type: number,
  block: number,
  payload?: Buffer,
): Promise<number> {
  const flush = type === NBD.CMD_FLUSH;
  client.sendRequest({
    type,
    cookie,
    offset: flush ? 0 : block * BLOCK_SPACING,
    length: flush ? 0 : BLOCK,
    payload,
  });
  const reply = await client.readReply(REQUEST_TIMEOUT_MS);
  if (reply.cookie !== cookie) throw new Error(`reply for cookie ${reply.cookie}, not ${cookie}`);
  return reply.error;
}

/** A block's bytes, or undefined when the server answered with an error. */
export async function readBlock(
  client: RawNbdClient,
  cookie: bigint,
  block: number,
): Promise<Buffer | undefined> {
  const error = await request(client, cookie, NBD.CMD_READ, block);
  if (error !== 0) return undefined;
  return Buffer.from(await client.read(BLOCK, REQUEST_TIMEOUT_MS));
}
