import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { certificateFacts } from "../transport/index.js";
import type { VolumeService } from "../volumes/index.js";

/**
 * Prometheus metrics of this node, read at scrape time from the volumes attached here (the engine is where the
 * in-sync set and resync progress live): GET /metrics, with the same bearer token as the API.
 */
export function createMetrics(volumes: VolumeService): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "holdfast_agent_" });
  new Gauge({
    name: "holdfast_volume_replicas_in_sync",
    help: "In-sync replicas of each volume attached on this node.",
    labelNames: ["volume"],
    registers: [registry],
    collect() {
      this.reset();
      for (const v of volumes.attachedHere()) this.set({ volume: v.name }, v.inSync);
    },
  });
  new Gauge({
    name: "holdfast_volume_replicas_wanted",
    help: "Replication factor of each volume attached on this node.",
    labelNames: ["volume"],
    registers: [registry],
    collect() {
      this.reset();
      for (const v of volumes.attachedHere()) this.set({ volume: v.name }, v.repl);
    },
  });
  const resync = (name: string, help: string, pick: (p: { done: number; total: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["volume", "node"],
      registers: [registry],
      collect() {
        this.reset();
        for (const v of volumes.attachedHere()) {
          for (const [node, p] of v.resync) {
            this.set({ volume: v.name, node }, pick(p));
          }
        }
      },
    });
  new Gauge({
    name: "holdfast_node_certificate_expiry_seconds",
    help: "When this node's replication certificate expires, in seconds since the epoch (absent without one).",
    registers: [registry],
    collect() {
      this.reset();
      // Read from the identity in use: a renewal replaces it in place.
      const identity = volumes.nodeIdentity;
      if (identity) this.set(certificateFacts(identity.certPem).notAfter.getTime() / 1000);
    },
  });
  resync("holdfast_resync_regions_done", "Regions a resync or rebuild has compared so far.", (p) => p.done);
  resync("holdfast_resync_regions_total", "Regions a resync or rebuild compares in all.", (p) => p.total);
  return registry;
}
