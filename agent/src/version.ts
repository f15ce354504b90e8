import pkg from "../../package.json" with { type: "json" };

/** The release, from package.json: one place to bump, read by `--version`, the API and CSI's plugin info. */
export const VERSION: string = pkg.version;
