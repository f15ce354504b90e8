// Shared volumes: one volume's file system served over NFSv4 by a Ganesha the agent runs and supervises.
export { filesystemId, type GaneshaExport, ganeshaConfig } from "./ganesha-config.js";
export { GaneshaServer, type GaneshaServerOptions } from "./ganesha-server.js";
export { forgetClients, type RecoveredClient, recoveredClients } from "./recovery-clients.js";
export {
  type LocalExport,
  RELAY_PROTOCOL,
  type ServingNode,
  ShareEndpoint,
  type ShareEndpointOptions,
  serveRelayed,
} from "./relay.js";
