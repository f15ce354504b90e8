import type { CampaignResult } from "./campaign.js";
import { FAULT_KINDS } from "./nemesis.js";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The campaign's report in the manner of a Jepsen analysis: what ran, what was done to it, what went wrong. */
export function renderReport(r: CampaignResult): string {
  const { options, counts } = r;
  const byKind = new Map<string, number>();
  for (const a of r.anomalies) byKind.set(a.kind, (byKind.get(a.kind) ?? 0) + 1);
  const takeovers = r.faults.flatMap((f) => (f.takeoverMs === undefined ? [] : [f.takeoverMs]));
  const lines = [
    `# Fault campaign: seed ${options.seed}, ${options.minutes} min, ${options.nodes} nodes`,
    "",
    `Started ${r.startedAt}; ${seconds(r.durationMs)} in all, faults for ${options.minutes} min, then quiescence.`,
    `Reproduce the schedule: \`npm run soak -- --minutes ${options.minutes} --seed ${options.seed} --nodes ${options.nodes}\``,
    "(the seed fixes which faults hit which nodes for how long, and every client's choices; timing is the machine's).",
    "",
    "## System and workload",
    `- A dev cluster of ${options.nodes} agents and one etcd (lease TTL 2 s); one volume, 64 MiB, repl=3. node${options.nodes}`,
    "  runs in a network namespace of its own, joined by a veth pair: a partition takes the host's end down, cutting it",
    "  off from etcd and every other agent while it runs and its clients (on this host) stay connected to it.",
    `- ${options.lanes} clients, each one NBD connection doing one request at a time on its own 4 KiB blocks (128 blocks`,
    "  in all, 512 KiB apart, so every 4 MiB region is written): 55% writes of self-describing content, 40% reads, 5%",
    "  flushes. Each block is a register: a read must return the last acknowledged (or already observed) write, or a",
    "  write that was in flight or failed after it; never an older one, never bytes no write made.",
    "- After the faults: every node up, every replica in sync, `volume check` identical, and every block read back.",
    "",
    "## Operations",
    "| writes acknowledged | writes indeterminate | reads checked | reads failed | flushes | reconnects |",
    "| ---: | ---: | ---: | ---: | ---: | ---: |",
    `| ${counts.writesAcknowledged} | ${counts.writesIndeterminate} | ${counts.readsChecked} | ${counts.readsFailed} | ${counts.flushes} | ${counts.reconnects} |`,
    "",
    `Final reads after quiescence: ${r.finalReads} blocks. Regions differing after quiescence: ${r.differing.length === 0 ? "none" : r.differing.join(", ")}.`,
    "",
    "## Faults",
    "| kind | count |",
    "| --- | ---: |",
    ...FAULT_KINDS.map((k) => `| ${k} | ${r.faults.filter((f) => f.kind === k).length} |`),
    "",
    `Planned moves before a partition (detach, attach where the partition needs the volume): ${r.faults.filter((f) => f.movedFrom).length}.`,
    "",
    takeovers.length > 0
      ? `Takeovers (attached node killed, frozen or cut off; another node attaches once its lease expired): ${takeovers.length}, ${seconds(Math.min(...takeovers))} to ${seconds(Math.max(...takeovers))}.`
      : "No takeover in this run.",
    "",
    "| at | fault | node | held | takeover | healed after |",
    "| ---: | --- | --- | ---: | ---: | ---: |",
    ...r.faults.map(
      (f) =>
        `| ${seconds(f.at)} | ${f.kind} | ${f.node ?? "etcd"} | ${seconds(f.heldMs)} | ${f.takeoverMs === undefined ? "" : seconds(f.takeoverMs)} | ${f.healedMs === undefined ? "not healed" : seconds(f.healedMs)} |`,
    ),
    "",
    "## Anomalies",
    r.anomalies.length === 0
      ? "None: no stale, impossible or corrupt read, no lost acknowledged write, replicas identical after quiescence."
      : [
          "| kind | count |",
          "| --- | ---: |",
          ...[...byKind].map(([k, n]) => `| ${k} | ${n} |`),
          "",
          ...r.anomalies.slice(0, 50).map((a) => `- ${seconds(a.at)} **${a.kind}**: ${a.detail}`),
        ].join("\n"),
    "",
    "## Not covered by this campaign",
    "- Partitions of more than one node, or partial ones (one direction, or between two agents while both reach etcd).",
    "- Slow or full disks, and faults on two nodes at once.",
    "",
  ];
  return lines.join("\n");
}
