export { tokenMatches } from "./auth.js";
export type { ClusterInfo } from "./routes.js";
export { type ApiServerOptions, createApiServer } from "./server.js";
