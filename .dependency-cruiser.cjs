// The arrows of docs/decisions/0012-import-arrows.md, checked by `npm run lint` (depcruise) and drawn by `npm run deps`.
// Type-only imports count (tsPreCompilationDeps): an interface imported the wrong way is the same knot as a value.

/** Folders of agent/src that may reach the edges: the edges themselves and the two roots that start them. */
const EDGES_AND_ROOTS = "^agent/src/(cli/|api/|main\\.ts$|node-agent\\.ts$)";

module.exports = {
  forbidden: [
    {
      name: "below-imports-edge",
      comment: "cli and api call into the services; nothing below them imports cli or api.",
      severity: "error",
      from: { path: "^agent/src/", pathNot: EDGES_AND_ROOTS },
      to: { path: "^agent/src/(cli|api)/" },
    },
    {
      name: "edges-apart",
      comment: "cli and api are separate edges: the CLI reaches the API over HTTP, never by import.",
      severity: "error",
      from: { path: "^agent/src/(cli|api)/" },
      to: { path: "^agent/src/(cli|api)/", pathNot: "^agent/src/$1/" },
    },
    {
      name: "folders-meet-at-faces",
      comment:
        "A folder of agent/src reaches another only through its index.ts, so each folder's face stays small.",
      severity: "error",
      from: { path: "^agent/src/([^/]+)/" },
      to: { path: "^agent/src/[^/]+/", pathNot: ["^agent/src/$1/", "^agent/src/.+/index\\.ts$"] },
    },
    {
      name: "roots-meet-at-faces",
      comment:
        "The files at the top of agent/src (node-agent.ts, main.ts, ...) reach a folder through its index.ts.",
      severity: "error",
      from: { path: "^agent/src/[^/]+\\.ts$" },
      to: { path: "^agent/src/[^/]+/", pathNot: "^agent/src/.+/index\\.ts$" },
    },
    {
      name: "engine-is-above",
      comment: "engine uses replica and transport (through contracts); they never import engine.",
      severity: "error",
      from: { path: "^agent/src/(replica|transport)/" },
      to: { path: "^agent/src/engine/" },
    },
    {
      name: "leaf-imports-only-errors",
      comment:
        "volume-spec, contracts and tls-trust are leaves: of the agent they import only errors and names.",
      severity: "error",
      from: { path: "^agent/src/(volume-spec|contracts|tls-trust)/" },
      to: { path: "^agent/src/", pathNot: ["^agent/src/$1/", "^agent/src/(errors|names)\\.ts$"] },
    },
    {
      name: "iac-uses-public-faces",
      comment:
        "providers and constructs import the agent only through a folder's index.ts (or errors.ts, names.ts), never its internals.",
      severity: "error",
      from: { path: "^(providers|constructs)/" },
      to: { path: "^agent/src/", pathNot: "^agent/src/([^/]+/index\\.ts|errors\\.ts|names\\.ts)$" },
    },
    {
      name: "no-unresolved-relative",
      comment:
        "A relative import that resolves to no file is checked by no rule above: refuse it rather than miss it.",
      severity: "error",
      from: { path: "^(agent/src|providers|constructs)/" },
      to: { couldNotResolve: true, path: "^\\.\\.?/" },
    },
    {
      name: "no-folder-cycles",
      comment: "No cycle between folders: each one can be read, and changed, after those it imports.",
      severity: "error",
      scope: "folder",
      from: { path: "^agent/src/" },
      to: { circular: true },
    },
    {
      name: "no-module-cycles",
      comment:
        "No cycle between modules of the agent, the provider or the constructs: an import cycle makes load order matter.",
      severity: "error",
      from: { path: "^(agent/src|providers/src|constructs)/" },
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    // No tsConfig: with it, its tsconfig-paths resolution maps the package "constructs" onto the constructs/ folder.
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
  },
};
