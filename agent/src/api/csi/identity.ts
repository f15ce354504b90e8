import type { Logger } from "pino";
import { unary } from "./status.js";

/** The plugin's name in CSI (a StorageClass's `provisioner`). */
export const CSI_DRIVER_NAME = "csi.holdfast.io";

/** The CSI Identity service: the plugin's name, what it offers, and whether it is ready. */
export function identityService(version: string, logger: Logger) {
  return {
    GetPluginInfo: unary("GetPluginInfo", logger, async () => ({
      name: CSI_DRIVER_NAME,
      vendor_version: version,
    })),
    GetPluginCapabilities: unary("GetPluginCapabilities", logger, async () => ({
      capabilities: [
        { service: { type: "CONTROLLER_SERVICE" } },
        { service: { type: "VOLUME_ACCESSIBILITY_CONSTRAINTS" } },
        { volume_expansion: { type: "ONLINE" } },
      ],
    })),
    // The socket only answers once the agent is up, so being reachable is being ready.
    Probe: unary("Probe", logger, async () => ({ ready: { value: true } })),
  };
}
