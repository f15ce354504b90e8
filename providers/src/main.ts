/**
 * terraform-provider-holdfast: Terraform starts this program and talks to it over gRPC (plugin protocol 6).
 * scripts/build-provider.mjs bundles it into the one file providers/bin/terraform-provider-holdfast.
 */
import { createLogger, serve } from "./plugin/index.js";

const logger = createLogger();
serve(logger).catch((err: unknown) => {
  logger.error("provider failed to start", { error: (err as Error)?.stack ?? String(err) });
  process.exit(1);
});
