import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runCampaign } from "./campaign.js";
import { renderReport } from "./report.js";

// `npm run soak -- --minutes N --seed S [--nodes 3..5] [--net A.B.C] [--out DIR]`: a fault campaign, its report
// written to DIR.
const usage = "usage: npm run soak -- --minutes N --seed S [--nodes 3..5] [--net A.B.C] [--out DIR]";
const { values } = parseArgs({
  options: {
    minutes: { type: "string" },
    seed: { type: "string" },
    nodes: { type: "string", default: "3" },
    net: { type: "string", default: "127.0.90" },
    out: { type: "string", default: "docs/reliability" },
  },
});
const number = (name: string, text: string | undefined, min: number, max: number): number => {
  const n = Number(text);
  if (text === undefined || !Number.isFinite(n) || n < min || n > max) {
    console.error(`soak: --${name} must be a number from ${min} to ${max}\n${usage}`);
    process.exit(2);
  }
  return n;
};
const minutes = number("minutes", values.minutes, 0.5, 24 * 60);
const seed = Math.floor(number("seed", values.seed, 0, 2 ** 32 - 1));
const nodes = Math.floor(number("nodes", values.nodes, 3, 5));

if (!/^127\.\d{1,3}\.\d{1,3}$/.test(values.net)) {
  console.error(`soak: --net must be a loopback /24 such as 127.0.90\n${usage}`);
  process.exit(2);
}
const result = await runCampaign({ minutes, seed, nodes, net: values.net });
const report = renderReport(result);
await mkdir(values.out, { recursive: true });
const base = join(values.out, `soak-seed${seed}-${minutes}m`);
await writeFile(`${base}.md`, report);
await writeFile(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
console.log(report);
console.log(`report: ${base}.md`);
process.exit(result.anomalies.length > 0 ? 1 : 0);
