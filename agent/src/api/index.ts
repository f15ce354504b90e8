export { type ApiTransport, apiTransport, isLoopback } from "./api-transport.js";
export type { ClusterInfo } from "./routes.js";
export { type ApiServerOptions, createApiServer } from "./server.js";
export { ApiTokens, type Principal, ROLES, type Role } from "./tokens.js";
