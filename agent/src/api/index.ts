export { tokenMatches } from "./auth.js";
export { type ClusterInfo, type NodeStatus } from "./routes.js";
export { type ApiServerOptions, createApiServer } from "./server.js";
