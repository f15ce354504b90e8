import { join } from "node:path";
import {
  type Client,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ROOT } from "./agent-process.js";

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
export type CsiMessage = Record<string, any>;
export type CsiService = "Identity" | "Controller" | "Node";

type Unary = (request: CsiMessage, done: (err: ServiceError | null, response: CsiMessage) => void) => void;

/** The vendored CSI spec the agent serves. */
export const CSI_PROTO_FILE = join(ROOT, "agent/src/api/csi/proto/csi.proto");

let csiPackage: GrpcObject | undefined;

/** The CSI v1 services, from the agent's own csi.proto, decoded as the sidecars and kubelet see them. */
function csiServices(): GrpcObject {
  csiPackage ??= (
    loadPackageDefinition(
      loadSync(CSI_PROTO_FILE, {
        keepCase: true,
        longs: Number,
        enums: String,
        defaults: true,
        oneofs: true,
      }),
    ).csi as GrpcObject
  ).v1 as GrpcObject;
  return csiPackage;
}

/** A CSI client on an agent's unix socket, playing the part of Kubernetes' sidecars and kubelet. */
export class CsiClient {
  private readonly clients = new Map<CsiService, Client>();

  constructor(private readonly socketPath: string) {}

  /** One unary call; rejects with the gRPC ServiceError (its `code` and `details`) when the call fails. */
  call(service: CsiService, method: string, request: CsiMessage = {}): Promise<CsiMessage> {
    let client = this.clients.get(service);
    if (!client) {
      client = new (csiServices()[service] as ServiceClientConstructor)(
        `unix:${this.socketPath}`,
        credentials.createInsecure(),
      ) as Client;
      this.clients.set(service, client);
    }
    const methods = client as unknown as Record<string, Unary>;
    return new Promise((resolve, reject) =>
      (methods[method] as Unary).call(client, request, (err, response) =>
        err ? reject(err) : resolve(response),
      ),
    );
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}
