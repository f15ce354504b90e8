// How a volume's io_profile and io_priority reach its I/O: a BlockDevice between the frontends and the engine.
export { IoShares, type IoSharesOptions, PRIORITY_WEIGHTS } from "./io-shares.js";
export {
  type IoTuning,
  PROFILES,
  type ProfileBehaviour,
  TunedDevice,
  type TunedDeviceOptions,
} from "./tuned-device.js";
