import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { listen, type MutualTls } from "./listen.js";
import type { Logger } from "./log.js";
import type { Handler, Request } from "./provider-service.js";
import { serviceDefinition } from "./services.js";
import { serverTls } from "./tls.js";

/** go-plugin's handshake for Terraform providers (internal/plugin6/serve.go in hashicorp/terraform). */
export const MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE";
export const MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL = 1;
const APP_PROTOCOL = 6;

const round = (ms: number) => Math.round(ms * 10) / 10;

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
  // Milliseconds since the process started (performance's time origin): start-up is most of a short command.
  const loadedMs = performance.now();
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

  const defs = {
    provider: serviceDefinition("tfplugin6.Provider"),
    stdio: serviceDefinition("plugin.GRPCStdio"),
    controller: serviceDefinition("plugin.GRPCController"),
    health: serviceDefinition("grpc.health.v1.Health"),
  };
  // The provider itself (the spec table with zod, got) loads after the handshake, while Terraform connects:
  // the handshake is what Terraform waits for, every time it starts the provider.
  let service: Promise<Record<string, Handler>> | undefined;
  const load = () => {
    service ??= import("./provider-service.js").then((module) => module.providerService(logger));
    return service;
  };
  const server = new grpc.Server();
  server.addService(defs.provider, unaryHandlers(Object.keys(defs.provider), load, logger.debug));
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
  let mtls: MutualTls | undefined;
  let handshakeCert = "";
  let tlsMs = 0;
  let tlsCached = false;
  if (clientCert && process.env.TF_DISABLE_PLUGIN_TLS !== "1") {
    const started = performance.now();
    const tls = await serverTls();
    tlsMs = performance.now() - started;
    tlsCached = tls.cached;
    mtls = { certPem: tls.certPem, keyPem: tls.keyPem, clientCertPem: clientCert };
    handshakeCert = tls.handshakeCert;
  }

  const dir = mkdtempSync(join(process.env.PLUGIN_UNIX_SOCKET_DIR || tmpdir(), "tf-holdfast-"));
  const socket = join(dir, "plugin.sock");
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  process.on("SIGTERM", () => process.exit(0));
  await listen(server, socket, logger, mtls);
  process.stdout.write(`${CORE_PROTOCOL}|${APP_PROTOCOL}|unix|${socket}|grpc|${handshakeCert}\n`);
  const handshakeMs = performance.now();
  // CPU time to the handshake, which other work on the machine does not inflate as it does the wall time.
  const { user, system } = process.cpuUsage();
  const cpuMs = (user + system) / 1000;
  load();
  logger.debug("serving", {
    socket,
    tls: handshakeCert !== "",
    tls_cached: tlsCached,
    startup_ms: {
      loaded: round(loadedMs),
      tls: round(tlsMs),
      handshake: round(handshakeMs),
      cpu: round(cpuMs),
    },
  });
}

/**
 * grpc-js unary handlers for `methods`, calling the provider service once it is loaded: each logs its call and
 * turns a thrown error into an error diagnostic (errors reach Terraform as diagnostics, never as gRPC errors).
 */
function unaryHandlers(
  methods: string[],
  load: () => Promise<Record<string, Handler>>,
  log: (message: string, fields: Record<string, unknown>) => void,
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const name of methods) {
    handlers[name] = (
      call: grpc.ServerUnaryCall<Request, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const started = performance.now();
      load()
        .then((service) => {
          const handler = service[name];
          if (!handler) throw new Error(`the provider does not implement ${name}`);
          return handler(call.request);
        })
        .catch((err: unknown) => ({
          diagnostics: [
            {
              severity: 1,
              summary: "Internal error in the holdfast provider",
              detail: (err as Error)?.stack ?? String(err),
            },
          ],
        }))
        .then((response) => {
          log("rpc", {
            rpc: name,
            type: call.request.type_name,
            ms: Math.round(performance.now() - started),
          });
          callback(null, response);
        });
    };
  }
  return handlers;
}
