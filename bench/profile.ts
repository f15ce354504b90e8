import { readFile } from "node:fs/promises";
import { SourceMap, type SourceMapPayload, type SourceMapping } from "node:module";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

/** The parts of a V8 .cpuprofile (what `node --cpu-prof` writes) the summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  /** Microseconds on CLOCK_MONOTONIC, the clock of `process.hrtime`. */
  startTime: number;
  endTime: number;
  /** The node on top of the stack at each sample, and the microseconds since the previous sample. */
  samples: number[];
  timeDeltas: number[];
}

/** One function's self time: samples where it was on top of the main thread's stack. */
export interface ProfileEntry {
  functionName: string;
  /**
   * Where it is defined: agent/src/… or node_modules/… through the bundle's source map, or node:…. A native
   * function has no place of its own, so its caller's is given: socket and file writes are both `writeBuffer`.
   */
  location: string;
  selfMs: number;
  /** Share of the main thread's busy (non-idle) time. */
  busyShare: number;
}

export interface ProfileSummary {
  /** The span summarised: the fio job's, not the agent's start-up and shutdown. */
  totalMs: number;
  /** Time the main thread waited in the event loop with nothing to run. */
  idleMs: number;
  busyMs: number;
  /** Busy time by where the code comes from: the agent, its dependencies, Node's own JavaScript, GC… */
  categories: Record<string, number>;
  top: ProfileEntry[];
}

const SPECIAL = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

/**
 * Sums self time per function over the samples of a profile of the bundled agent that fall in `windowUs`
 * (CLOCK_MONOTONIC microseconds: when fio ran). Each sample counts the time until the next one, as Chrome
 * DevTools counts it, so the parts add up to the window.
 */
export async function summariseProfile(
  profilePath: string,
  bundlePath: string,
  windowUs: [number, number],
  top = 15,
): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(profilePath, "utf8")) as CpuProfile;
  const locate = await bundleLocator(bundlePath);
  const selfUsByNode = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < windowUs[0] || at > windowUs[1]) continue;
    const node = profile.samples[i] as number;
    selfUsByNode.set(node, (selfUsByNode.get(node) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }

  // The key holds the location as well as functionName+url: every bundled function shares one url, and
  // anonymous functions would otherwise all merge into one entry.
  const byFunction = new Map<string, { functionName: string; location: string; selfMs: number }>();
  const parents = new Map<number, CallFrame>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parents.set(child, node.callFrame);
  for (const { id, callFrame } of profile.nodes) {
    const selfUs = selfUsByNode.get(id);
    if (selfUs === undefined) continue;
    const functionName = callFrame.functionName || "(anonymous)";
    const caller = parents.get(id);
    const location = SPECIAL.has(functionName)
      ? ""
      : callFrame.url === "" && caller
        ? `(native) from ${caller.functionName || "(anonymous)"} ${locate(caller)}`
        : locate(callFrame);
    const key = `${functionName}\u0000${location}`;
    const entry = byFunction.get(key) ?? { functionName, location, selfMs: 0 };
    entry.selfMs += selfUs / 1000;
    byFunction.set(key, entry);
  }

  const entries = [...byFunction.values()];
  const totalMs = entries.reduce((sum, e) => sum + e.selfMs, 0);
  const idleMs = entries.find((e) => e.functionName === "(idle)")?.selfMs ?? 0;
  const busyMs = totalMs - idleMs;
  const categories: Record<string, number> = {};
  for (const entry of entries) {
    if (entry.functionName === "(idle)") continue;
    const category = categoryOf(entry);
    categories[category] = (categories[category] ?? 0) + entry.selfMs;
  }
  return {
    totalMs,
    idleMs,
    busyMs,
    categories,
    top: entries
      .filter((e) => e.functionName !== "(idle)")
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top)
      .map((e) => ({ ...e, busyShare: e.selfMs / Math.max(busyMs, 1e-9) })),
  };
}

function categoryOf({ functionName, location }: { functionName: string; location: string }): string {
  if (functionName === "(garbage collector)") return "garbage collector";
  if (functionName === "(program)") return "native, outside JavaScript (program)";
  if (location.startsWith("(native)")) return "native functions called from JavaScript";
  if (location.startsWith("agent/")) return "agent code";
  if (location.includes("node_modules/")) return "dependencies";
  if (location.startsWith("node:")) return "Node's JavaScript (node:*)";
  return "other";
}

/** Maps a call frame to its original source through the bundle's source map (built with `sourcemap: "linked"`). */
async function bundleLocator(
  bundlePath: string,
): Promise<(frame: CpuProfile["nodes"][0]["callFrame"]) => string> {
  const mapPath = `${bundlePath}.map`;
  const payload = JSON.parse(await readFile(mapPath, "utf8")) as SourceMapPayload;
  const map = new SourceMap(payload);
  const root = resolve(dirname(bundlePath), "..");
  return ({ url, lineNumber, columnNumber }) => {
    if (!url) return "(native)";
    if (!url.startsWith("file:")) return `${url}:${lineNumber + 1}`;
    const file = fileURLToPath(url);
    if (file !== bundlePath) return `${relative(root, file)}:${lineNumber + 1}`;
    // Call frames and findEntry both count lines and columns from 0.
    const entry = map.findEntry(lineNumber, columnNumber) as Partial<SourceMapping>;
    if (entry.originalSource === undefined || entry.originalLine === undefined)
      return `dist/holdfast.mjs:${lineNumber + 1}`;
    const source = entry.originalSource.startsWith("file:")
      ? fileURLToPath(entry.originalSource)
      : entry.originalSource;
    return `${relative(root, resolve(dirname(mapPath), source))}:${entry.originalLine + 1}`;
  };
}
