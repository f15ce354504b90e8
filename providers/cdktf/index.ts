/**
 * CDKTF bindings for the holdfast/holdfast provider, generated from its own schema by providers/tools/gen-cdktf.ts:
 * HoldfastProvider, HoldfastVolume (resource holdfast_volume), DataHoldfastCluster and DataHoldfastVolume.
 */
export * from "./generated.js";
