import { X509Certificate } from "node:crypto";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "./log.js";

/** AutoMTLS: our certificate and key, and the client certificate Terraform passed in PLUGIN_CLIENT_CERT (PEM). */
export interface MutualTls {
  certPem: string;
  keyPem: string;
  clientCertPem: string;
}

/**
 * Listens on the unix socket `path` and hands each connection to `server` through grpc-js's connection injector.
 *
 * With AutoMTLS the TLS is done here rather than by grpc-js, which checks the client's certificate against a CA
 * store (its `createSsl` rootCerts). Node 20 builds its whole root store, parsing some 140 bundled certificates
 * (about 40 ms here, at every start), as soon as a TLS context gets any CA. So this TLS server asks for the client's
 * certificate, trusts no CA, and lets in only a connection whose certificate is exactly the one Terraform named;
 * the TLS handshake itself proves that the client holds that certificate's key. go-plugin's own server accepts a
 * certificate chaining to that one, and Terraform presents that one.
 */
export async function listen(
  server: grpc.Server,
  path: string,
  logger: Logger,
  mtls?: MutualTls,
): Promise<void> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let listener: Server;
  if (mtls) {
    const expected = new X509Certificate(mtls.clientCertPem).raw;
    listener = createTlsServer(
      {
        cert: mtls.certPem,
        key: mtls.keyPem,
        // An empty list rather than none: without `ca` Node gives the context its root store.
        ca: [],
        requestCert: true,
        rejectUnauthorized: false,
        ALPNProtocols: ["h2"],
      },
      (socket: TLSSocket) => {
        // A connection that fails later (Terraform gone) is the HTTP/2 session's business, not an uncaught error.
        socket.on("error", (err) => logger.debug("plugin connection error", { error: err.message }));
        if (socket.getPeerX509Certificate()?.raw.equals(expected)) injector.injectConnection(socket);
        else {
          logger.warn("refused a plugin connection without Terraform's client certificate");
          socket.destroy();
        }
      },
    );
  } else {
    listener = createNetServer((socket: Socket) => injector.injectConnection(socket));
  }
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(path, () => resolve());
  });
}
