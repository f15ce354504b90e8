// Start-up of the Terraform provider: from spawning providers/bin/terraform-provider-holdfast to its handshake
// line on stdout, as Terraform starts it (magic cookie, AutoMTLS with a client certificate). Terraform starts the
// provider 2 to 5 times per command, one after another, so this is paid on every plan and apply.
// Writes bench/results/provider-startup.{json,md}.
//
//   node --import tsx bench/provider-startup.ts [RUNS]      (builds the provider first; default 30 runs)

import { execFileSync, spawn } from "node:child_process";
import { statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from "../providers/src/plugin/serve.js";
import { selfSignedCertificate } from "../providers/src/plugin/tls-certificate.js";
import { ROOT } from "../test/support/agent-process.js";
import { saveResults } from "./report.js";

const PROVIDER = join(ROOT, "providers/bin/terraform-provider-holdfast");
const _RESULTS = join(ROOT, "bench/results");
/** The limit on start to handshake, on this machine. */
const LIMIT_MS = 200;

interface Run {
  /** Spawn to handshake line, measured by this process. */
  wallMs: number;
  /** The provider's own marks (ms since its process started): bundle evaluated, TLS made, handshake written. */
  inside?: { loaded: number; tls: number; handshake: number; cpu: number };
  /** What the provider's code cache did at this start (hit, miss, ...), from its "code cache" log line. */
  codeCache?: string;
}

/** Spawns `command`, resolves with the time to its first stdout line and what its "serving" log line says. */
function startOnce(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let wallMs = 0;
    // Stopped once it has logged its code cache (after the handshake and the "serving" line), or soon after the
    // handshake when it logs none: the next start must find the cache this one wrote.
    const stopWhenLogged = () => {
      if (wallMs > 0 && stderr.includes('"code cache"')) child.kill("SIGTERM");
    };
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (wallMs === 0 && stdout.includes("\n")) {
        wallMs = performance.now() - started;
        setTimeout(() => child.kill("SIGTERM"), 500);
        stopWhenLogged();
      }
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      stopWhenLogged();
    });
    child.on("error", reject);
    child.on("exit", () => {
      if (wallMs === 0) return reject(new Error(`no handshake from ${command}:\n${stderr}`));
      const line = (message: string) => {
        const found = stderr.split("\n").find((l) => l.includes(`"${message}"`));
        return found ? JSON.parse(found) : undefined;
      };
      resolve({ wallMs, inside: line("serving")?.startup_ms, codeCache: line("code cache")?.status });
    });
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const p90 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.9)] ?? Number.NaN;
const r1 = (ms: number) => Math.round(ms * 10) / 10;

/** `runs` starts after one warm-up; `before` runs ahead of each (to empty the certificate cache). */
async function series(
  name: string,
  runs: number,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  before: () => Promise<void> = async () => undefined,
) {
  const results: Run[] = [];
  await startOnce(command, args, env); // warm the page cache
  for (let i = 0; i < runs; i++) {
    await before();
    results.push(await startOnce(command, args, env));
  }
  const wall = results.map((r) => r.wallMs);
  const inside = (key: "loaded" | "tls" | "handshake" | "cpu") => {
    const values = results.flatMap((r) => (r.inside ? [r.inside[key]] : []));
    return values.length > 0 ? r1(median(values)) : null;
  };
  return {
    name,
    runs,
    medianMs: r1(median(wall)),
    p90Ms: r1(p90(wall)),
    minMs: r1(Math.min(...wall)),
    maxMs: r1(Math.max(...wall)),
    inside: {
      loadedMs: inside("loaded"),
      tlsMs: inside("tls"),
      handshakeMs: inside("handshake"),
      cpuMs: inside("cpu"),
    },
    codeCache: [...new Set(results.map((r) => r.codeCache ?? "-"))].join(", "),
  };
}

async function main() {
  const runs = Number(process.argv[2] ?? 30);
  execFileSync(process.execPath, [join(ROOT, "scripts/build-provider.mjs")], { stdio: "inherit" });
  const client = await selfSignedCertificate(3_600_000);
  // The provider keeps its certificate in $XDG_RUNTIME_DIR/holdfast-provider: a directory of the bench's own.
  const runtime = await mkdtemp(join(tmpdir(), "hf-bench-runtime-"));
  const env = {
    ...process.env,
    [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
    PLUGIN_PROTOCOL_VERSIONS: "6",
    XDG_RUNTIME_DIR: runtime,
  };
  // Node's own start-up, with the same marks the provider logs, for comparison: as Terraform passes the
  // environment on (NODE_EXTRA_CA_CERTS included, when set) and without NODE_EXTRA_CA_CERTS, as the provider runs.
  const nodeMarks =
    "const t = performance.now(); const { user, system } = process.cpuUsage(); console.log(1); " +
    'console.error(JSON.stringify({ "@message": "serving", startup_ms: { loaded: t, tls: 0, handshake: t, cpu: (user + system) / 1000 } }))';
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const nodeRows = [];
  if (extraCa)
    nodeRows.push(
      await series(
        `node printing one line, NODE_EXTRA_CA_CERTS=${extraCa}`,
        runs,
        process.execPath,
        ["-e", nodeMarks],
        env,
      ),
    );
  nodeRows.push(
    await series("node printing one line (Node's own start-up)", runs, process.execPath, ["-e", nodeMarks], {
      ...env,
      NODE_EXTRA_CA_CERTS: undefined,
    }),
  );
  const plain = await series("provider, plaintext (TF_DISABLE_PLUGIN_TLS=1)", runs, PROVIDER, [], {
    ...env,
    TF_DISABLE_PLUGIN_TLS: "1",
  });
  const mtlsEnv = { ...env, PLUGIN_CLIENT_CERT: client.certPem };
  const cache = join(runtime, "holdfast-provider");
  const first = await series(
    "provider, AutoMTLS, nothing cached (first start of a new build)",
    runs,
    PROVIDER,
    [],
    mtlsEnv,
    () => rm(cache, { recursive: true, force: true }),
  );
  const cold = await series(
    "provider, AutoMTLS, no certificate cached (first start of a command after an hour)",
    runs,
    PROVIDER,
    [],
    mtlsEnv,
    () => rm(join(cache, "server-tls.json"), { force: true }),
  );
  const mtls = await series("provider, AutoMTLS, all cached (later starts)", runs, PROVIDER, [], mtlsEnv);
  await rm(runtime, { recursive: true, force: true });
  const results = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "",
      node: process.version,
      loadAverage: loadavg(),
    },
    bundleBytes: statSync(PROVIDER).size,
    limitMs: LIMIT_MS,
    pass: mtls.medianMs < LIMIT_MS,
    series: [...nodeRows, plain, first, cold, mtls],
  };
  const rows = results.series.map(
    (s) =>
      `| ${s.name} | ${s.medianMs} | ${s.p90Ms} | ${s.minMs} | ${s.maxMs} | ${s.inside.loadedMs ?? "-"} | ${s.inside.tlsMs ?? "-"} | ${s.inside.handshakeMs ?? "-"} | ${s.inside.cpuMs ?? "-"} | ${s.codeCache} |`,
  );
  const md = `# Provider start-up

Spawn of \`providers/bin/terraform-provider-holdfast\` to its handshake line on stdout, ${runs} runs each after one
warm-up, one after another (as Terraform starts it). ${results.date}; ${results.machine.cpus} cores
(${results.machine.cpuModel}), Node ${results.machine.node}, load average ${results.machine.loadAverage.map((l) => l.toFixed(2)).join(" ")};
bundle ${(results.bundleBytes / 1024).toFixed(0)} KiB. Limit: median under ${LIMIT_MS} ms with AutoMTLS and warm caches: **${results.pass ? "pass" : "FAIL"}**.

"Inside" columns are the provider's own marks, in ms since its process started (\`performance.now()\`, logged on
its "serving" debug line): when the bundle had been evaluated and \`serve()\` began, how long getting the TLS
certificate took (read from the cache, or made), when the handshake line was written, and the CPU time (user +
system) the process had used by then, which other work on the machine inflates less than the wall time. "Code
cache" is what the provider's "code cache" log line said at those starts.

| series | median ms | p90 ms | min ms | max ms | inside: loaded | inside: TLS | inside: handshake | inside: CPU ms | code cache |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Where the time goes (measured once, 2026-11-25, load average about 2, CPU ms to the handshake with every cache
warm, the builds alternating start by start). Before this work a start cost 244 ms; then:

- NODE_EXTRA_CA_CERTS (set on this machine to the system bundle of 144 certificates, and passed on by Terraform)
  made Node parse that file and build its root store at every start: \`node -e\` takes 136 ms with it, 49 ms
  without. The provider's first line is read by sh, which moves the variable to HOLDFAST_PROVIDER_EXTRA_CA_CERTS and
  starts Node on the same file; the API client adds those certificates itself for an https endpoint. 244 -> 223 ms
  only, because the AutoMTLS context still built the root store (next but one).
- V8's code cache for the handshake half (grpc-js, protobufjs light and the descriptors, serve), kept beside the
  certificate: the half is carried as a string and compiled with the cache. 223 -> 175 ms.
- The plugin socket's TLS is node:tls, letting in only the exact client certificate Terraform named, handing
  connections to grpc-js's connection injector: grpc-js's own TLS gives Node a CA, and Node then builds its whole
  root store (some 140 bundled certificates, about 40 ms). 175 -> 136 ms.
- The AutoMTLS certificate is written as DER with node:crypto alone instead of \`@peculiar/x509\`, whose load cost
  about 100 ms at every start that made a certificate; making one now costs about 10 ms, so a start without a cached
  certificate costs as much as one with it (251 -> 124 ms), and the bundle is 350 KiB smaller. 136 -> 128 ms warm.

What is left, by CPU at marks inside the provider: Node itself about 45 ms and compiling the file's outer part
(main, the code cache, the carried strings) about 5; reading and checking the 1 MiB code cache 3 and taking it 7;
running the handshake half's module code (grpc-js's modules and the Node modules they load: http2, tls, net, zlib,
dns) about 37; serve() to the handshake line (service definitions, certificate, TLS context, socket) about 14.
Without a code cache (the first start of a new build, or of a new Node) compiling the half costs about 45 ms more;
the cache is then written after the handshake. The provider proper (zod, got, the spec table: over half the
bundle) is carried as a string and compiled only after the handshake. Both caches live in
\`$XDG_RUNTIME_DIR/holdfast-provider\` (else \`holdfast-provider-<uid>\` in the temp dir; user only): the certificate
for an hour, the code cache per build, Node version and machine (a start that writes one removes other builds'
caches more than a day old).
A Node single executable application (sea-config useSnapshot/useCodeCache) was not tried: it needs postject, which
is not a dependency here, and would make the one file a 99 MB copy of Node per platform.

Regenerate with \`node --import tsx bench/provider-startup.ts\`. Figures move with other work on the machine; compare
the rows of one run with each other.
`;
  await saveResults("provider-startup", results, md);
  process.stdout.write(md);
}

await main();
