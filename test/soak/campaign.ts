import { DevCluster } from "../support/dev-cluster.js";
import { RawNbdClient } from "../support/nbd-client.js";
import { NetnsNode } from "../support/netns-node.js";
import { Lane, type LaneCounts, readBlock } from "./lanes.js";
import { type FaultRecord, Nemesis } from "./nemesis.js";
import { Random } from "./random.js";
import { type Anomaly, RegisterModel } from "./register-model.js";

export interface CampaignOptions {
  /** How long faults are injected, in minutes (quiescence and the final checks come after). */
  minutes: number;
  /** Names the schedule: which faults, on which nodes, held how long, and every client's choices. */
  seed: number;
  /** Nodes in the cluster (3 to 5): the last one in a network namespace of its own, for partitions. @default 3 */
  nodes?: number;
  /** Loopback /24 the dev cluster uses. @default "127.0.90" */
  net?: string;
  /** Concurrent clients, each a register for its own blocks. @default 4 */
  lanes?: number;
}

export interface CampaignResult {
  options: Required<CampaignOptions>;
  startedAt: string;
  durationMs: number;
  counts: LaneCounts;
  faults: FaultRecord[];
  anomalies: Anomaly[];
  /** Regions where the replicas differed after quiescence (`volume check`). */
  differing: number[];
  /** Blocks read back after quiescence. */
  finalReads: number;
}

const VOLUME = "soak";
const BLOCKS = 128;

/**
 * A fault campaign: clients write and read a replicated volume through NBD, recording every acknowledged write and
 * checking every read against a register model, while the nemesis kills, freezes, partitions and takes over nodes
 * and pauses etcd. After quiescence the replicas must be identical and every block must hold its last acknowledged write.
 */
export async function runCampaign(given: CampaignOptions): Promise<CampaignResult> {
  const options: Required<CampaignOptions> = { nodes: 3, net: "127.0.90", lanes: 4, ...given };
  const started = Date.now();
  const clock = () => Date.now() - started;
  const random = new Random(options.seed);
  const model = new RegisterModel(clock);
  const counts: LaneCounts = {
    writesAcknowledged: 0,
    writesIndeterminate: 0,
    readsChecked: 0,
    readsFailed: 0,
    flushes: 0,
    reconnects: 0,
  };
  const cluster = await DevCluster.start(options.net, [
    "--nodes",
    String(options.nodes - 1),
    "--lease-ttl",
    "2",
  ]);
  try {
    const cut = await NetnsNode.join(cluster, {
      id: `node${options.nodes}`,
      index: options.nodes,
      zone: `zone-${String.fromCharCode(96 + options.nodes)}`,
    });
    cluster.adopt(cut);
    await cluster.json(["volume", "create", `name=${VOLUME},size=64M,repl=3`]);
    await cluster.json(["volume", "attach", VOLUME], "node1");
    const nemesis = new Nemesis(cluster, VOLUME, "node1", random.fork(), model, clock, cut);
    const socket = async () => cluster.nbdSocket(nemesis.attached, VOLUME);
    const lanes = Array.from({ length: options.lanes }, (_, lane) => {
      const blocks = Array.from({ length: BLOCKS }, (_, b) => b).filter((b) => b % options.lanes === lane);
      return new Lane({ blocks, socket, exportName: VOLUME, model, random: random.fork(), counts });
    });
    for (const lane of lanes) lane.start();
    try {
      await nemesis.run(options.minutes * 60_000);
    } finally {
      await Promise.all(lanes.map((l) => l.stop()));
    }
    await nemesis.heal();
    const check = await cluster.json<{ differing: number[] }>(["volume", "check", VOLUME], nemesis.attached);
    if (check.differing.length > 0) {
      model.record("replicas-differ", `after quiescence, regions ${check.differing.join(", ")} differ`);
    }
    const finalReads = await readEverything(cluster.nbdSocket(nemesis.attached, VOLUME), model);
    return {
      options,
      startedAt: new Date(started).toISOString(),
      durationMs: clock(),
      counts,
      faults: nemesis.faults,
      anomalies: model.anomalies,
      differing: check.differing,
      finalReads,
    };
  } finally {
    await cluster.down();
  }
}

/** Reads every block once after quiescence: each must hold its last acknowledged write, or a later indeterminate one. */
async function readEverything(socket: string, model: RegisterModel): Promise<number> {
  const { client } = await RawNbdClient.open(socket, VOLUME);
  try {
    let cookie = 1n;
    for (const { block } of model.expected()) {
      const data = await readBlock(client, cookie++, block);
      if (!data) throw new Error(`final read of block ${block} failed`);
      model.read(block, data, true);
    }
    return model.expected().length;
  } finally {
    client.close();
  }
}
