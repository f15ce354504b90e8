import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { fromJSON } from "@grpc/proto-loader";
import descriptorJson from "../../proto/descriptors.json" with { type: "json" };
import { HoldfastProvider } from "../provider.js";
import type { Logger } from "./log.js";
import { providerService, unaryHandlers } from "./provider-service.js";
import { serverTls } from "./tls.js";

/** go-plugin's handshake for Terraform providers (internal/plugin6/serve.go in hashicorp/terraform). */
export const MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE";
export const MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL = 1;
const APP_PROTOCOL = 6;

type ServiceOf = { service: grpc.ServiceDefinition };

/**
 * The gRPC services, from descriptors the build precompiled out of providers/proto/*.proto: parsing .proto text
 * at every start would cost start-up time, and Terraform starts the provider several times per command.
 */
function services() {
  const packages = grpc.loadPackageDefinition(
    fromJSON(descriptorJson as Parameters<typeof fromJSON>[0], {
      keepCase: true,
      longs: Number,
      enums: Number,
      defaults: false,
      oneofs: true,
    }),
  ) as unknown as {
    tfplugin6: { Provider: ServiceOf };
    plugin: { GRPCStdio: ServiceOf; GRPCController: ServiceOf };
    grpc: { health: { v1: { Health: ServiceOf } } };
  };
  return {
    provider: packages.tfplugin6.Provider.service,
    stdio: packages.plugin.GRPCStdio.service,
    controller: packages.plugin.GRPCController.service,
    health: packages.grpc.health.v1.Health.service,
  };
}

/** The handshake line's refusal when something other than Terraform starts the provider. */
function notStartedByTerraform(): never {
  process.stderr.write(
    "This is the Terraform provider holdfast/holdfast: Terraform starts it, it is not run by hand.\n" +
      "Use it through a dev_overrides or filesystem_mirror CLI configuration (see providers/README.md).\n",
  );
  process.exit(1);
}

/**
 * Serves the provider the way go-plugin expects: gRPC on a fresh unix socket, mutual TLS with the certificate
 * Terraform passed in PLUGIN_CLIENT_CERT (AutoMTLS), then one handshake line on stdout and nothing else there.
 */
export async function serve(logger: Logger): Promise<void> {
  if (process.env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) notStartedByTerraform();
  const versions = process.env.PLUGIN_PROTOCOL_VERSIONS?.split(",") ?? [String(APP_PROTOCOL)];
  if (!versions.includes(String(APP_PROTOCOL))) {
    process.stderr.write(
      `Terraform asks for plugin protocol ${versions.join(" or ")}; this provider speaks ${APP_PROTOCOL}\n`,
    );
    process.exit(1);
  }
  // Ctrl-C reaches the provider too; Terraform follows it with StopProvider, which cancels work in flight.
  process.on("SIGINT", () => logger.debug("SIGINT: waiting for Terraform's StopProvider"));

  const defs = services();
  const provider = new HoldfastProvider(logger);
  const server = new grpc.Server();
  server.addService(defs.provider, unaryHandlers(providerService(provider), logger.debug));
  // go-plugin streams the plugin's stdio through this; the provider writes nothing there, so it stays open, empty.
  server.addService(defs.stdio, { StreamStdio: () => undefined });
  server.addService(defs.controller, {
    Shutdown: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      callback(null, {});
      // go-plugin waits for the process to end after Shutdown (and kills it after 2 s): exit once the answer is out.
      setTimeout(() => process.exit(0), 10);
    },
  });
  server.addService(defs.health, {
    Check: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { status: 1 }),
  });

  const clientCert = process.env.PLUGIN_CLIENT_CERT;
  let credentials = grpc.ServerCredentials.createInsecure();
  let handshakeCert = "";
  if (clientCert && process.env.TF_DISABLE_PLUGIN_TLS !== "1") {
    const tls = await serverTls();
    credentials = grpc.ServerCredentials.createSsl(
      Buffer.from(clientCert),
      [{ private_key: Buffer.from(tls.keyPem), cert_chain: Buffer.from(tls.certPem) }],
      true,
    );
    handshakeCert = tls.handshakeCert;
  }

  const dir = mkdtempSync(join(process.env.PLUGIN_UNIX_SOCKET_DIR || tmpdir(), "tf-holdfast-"));
  const socket = join(dir, "plugin.sock");
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  process.on("SIGTERM", () => process.exit(0));
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, credentials, (err) => (err ? reject(err) : resolve())),
  );
  process.stdout.write(`${CORE_PROTOCOL}|${APP_PROTOCOL}|unix|${socket}|grpc|${handshakeCert}\n`);
  logger.debug("serving", { socket, tls: handshakeCert !== "" });
}
