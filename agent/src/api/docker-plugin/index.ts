// The Docker volume plugin (protocol v1, driver `holdfast`): how Docker and Marathon's `dvdi` volumes use Holdfast.
// CSI shares two helpers from here: claimSocket/restrictSocket, and keyValue (a spec key in canonical form).
export { keyValue } from "./names.js";
export {
  type DockerPlugin,
  type DockerPluginOptions,
  PLUGIN_CONTENT_TYPE,
  serveDockerPlugin,
} from "./server.js";
export { claimSocket, restrictSocket } from "./unix-socket.js";
