#!/usr/bin/env node
// Draws the folder-level import arrows of the agent, the provider and the constructs (what .dependency-cruiser.cjs
// checks) into docs/architecture/deps.md: a Mermaid flowchart for reading, and the same arrows as a plain list that
// diffs well in review. No graphviz needed.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const depcruise = join(root, "node_modules", ".bin", "depcruise");
const cruised = JSON.parse(
  execFileSync(
    depcruise,
    [
      "agent/src",
      "providers",
      "constructs",
      "--include-only",
      "^(agent/src|providers|constructs)/",
      "--collapse",
      "^(agent/src/[^/]+|providers/[^/]+|constructs)",
      "--output-type",
      "json",
    ],
    { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  ),
);

const arrows = new Map();
for (const m of cruised.modules) {
  const to = [...new Set(m.dependencies.map((d) => d.resolved))].filter((t) => t !== m.source).sort();
  arrows.set(m.source, to);
}
const nodes = [...arrows.keys()].sort();
const id = (name) => name.replace(/[^A-Za-z0-9]/g, "_");
const label = (name) => name.replace(/^agent\/src\//, "");

const mermaid = [
  "flowchart LR",
  ...nodes.map((n) => `  ${id(n)}["${label(n)}"]`),
  ...nodes.flatMap((n) => arrows.get(n).map((t) => `  ${id(n)} --> ${id(t)}`)),
];
const list = nodes.map((n) => `${label(n)} -> ${arrows.get(n).map(label).join(", ") || "(nothing)"}`);

const page = `# Import arrows

Who imports whom, folder by folder (agent/src folders by name). Drawn by \`npm run deps\` from the sources; the rules
that keep these arrows pointing one way are in \`.dependency-cruiser.cjs\` and \`docs/decisions/0012-import-arrows.md\`.

\`\`\`mermaid
${mermaid.join("\n")}
\`\`\`

\`\`\`text
${list.join("\n")}
\`\`\`
`;
const file = join(root, "docs", "architecture", "deps.md");
// `--check` (in npm run lint): fail when the committed picture is not what the sources draw now.
if (process.argv.includes("--check")) {
  if (readFileSync(file, "utf8") !== page) {
    process.stderr.write("docs/architecture/deps.md is stale: run `npm run deps`\n");
    process.exit(1);
  }
} else {
  writeFileSync(file, page);
  process.stdout.write(`${list.join("\n")}\n`);
}
