/**
 * terraform-provider-holdfast: Terraform starts this program and talks to it over gRPC (plugin protocol 6).
 * scripts/build-provider.mjs bundles it into the one file providers/bin/terraform-provider-holdfast.
 */
import { saveCodeCache } from "./plugin/code-cache.js";
import { createLogger, serve } from "./plugin/index.js";

const logger = createLogger();
serve(logger).then(
  () => {
    const started = performance.now();
    const status = saveCodeCache();
    logger.debug("code cache", { status, ms: Math.round(performance.now() - started) });
  },
  (err: unknown) => {
    logger.error("provider failed to start", { error: (err as Error)?.stack ?? String(err) });
    process.exit(1);
  },
);
