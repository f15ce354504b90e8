// The frontends that let this host use a volume: a block device path, optionally with a mounted file system.
export { cleanupStale, type ExposedVolume, exposeVolume, type HostVolumeOptions } from "./host-volume.js";
export type { Logger } from "./log.js";
export { type MountEntry, readMounts } from "./mountinfo.js";
export { withoutFuse } from "./run.js";
