// CSI v1 (Identity, Controller, Node) on a unix socket: how Kubernetes uses Holdfast volumes.
export { CSI_DRIVER_NAME } from "./identity.js";
export { type CsiOptions, type CsiServer, serveCsi } from "./server.js";
export { ZONE_KEY } from "./volumes.js";
