import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import { connect as connectTls, type TLSSocket } from "node:tls";
import { VolumeId } from "../contracts/index.js";
import { InputError } from "../errors.js";
import type { Logger } from "../frontend/index.js";
import { clientTlsOptions, type NodeIdentity } from "../transport/index.js";

/**
 * The ALPN protocol of a relayed NFS stream on the replication port. After the TLS handshake the client node sends
 * one line, the volume id; the serving node answers `OK` or `ERR <code> <reason>` and then carries bytes both ways.
 */
export const RELAY_PROTOCOL = "holdfast-nfs/1";

const MAX_LINE = 128;
const HEADER_TIMEOUT_MS = 10_000;

/** Where a shared volume's Ganesha listens on the node that serves it. */
export interface LocalExport {
  readonly host: string;
  readonly port: number;
}

/** Reads one `\n`-ended line of at most MAX_LINE bytes; what follows it is given back with it. */
function readLine(socket: Socket, timeoutMs: number): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error("no header in time")), timeoutMs);
    const done = (err: Error | undefined, value?: { line: string; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      if (err) reject(err);
      else if (value) resolve(value);
    };
    const onClose = () => done(new Error("closed before its header"));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(0x0a);
      if (end >= 0 && end < MAX_LINE) {
        done(undefined, {
          line: buffered.subarray(0, end).toString("latin1"),
          rest: buffered.subarray(end + 1),
        });
      } else if (end >= MAX_LINE || buffered.length >= MAX_LINE) {
        done(new Error("header too long"));
      }
    };
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.resume();
  });
}

/** Carries bytes both ways until either side ends; an error on one side ends the other. */
function splice(a: Socket, b: Socket, first: Buffer): void {
  if (first.length > 0) b.write(first);
  a.pipe(b);
  b.pipe(a);
  a.once("close", () => b.destroy());
  b.once("close", () => a.destroy());
  a.on("error", () => a.destroy());
  b.on("error", () => b.destroy());
  a.resume();
}

/**
 * The serving node's half of the relay: a stream from `peer` (a node of the cluster, authenticated by the
 * replication port) for a volume whose export `local` finds on this node is joined to that Ganesha. Any node of the
 * cluster may reach any shared volume: that is what sharing is. A stream for a volume not served here is refused
 * with `shared.not_served`, so the client node looks again.
 */
export function serveRelayed(
  socket: TLSSocket,
  peer: string,
  local: (volumeId: string) => LocalExport | undefined,
  logger: Logger,
): void {
  socket.setNoDelay(true);
  readLine(socket, HEADER_TIMEOUT_MS).then(
    ({ line, rest }) => {
      const refuse = (code: string, reason: string) => {
        logger.warn({ peer, code, reason }, "shared relay: stream refused");
        socket.end(`ERR ${code} ${reason}\n`);
      };
      if (!VolumeId.safeParse(line).success)
        return refuse("shared.bad_header", "the header is not a volume id");
      const target = local(line);
      if (!target) return refuse("shared.not_served", `volume ${line} is not served by this node`);
      const upstream = connectTcp({ host: target.host, port: target.port });
      upstream.setNoDelay(true);
      let joined = false;
      upstream.once("connect", () => {
        joined = true;
        socket.write("OK\n");
        splice(socket, upstream, rest);
      });
      upstream.once("error", (err) => {
        if (!joined) refuse("shared.not_served", `volume ${line}'s server is not answering`);
        logger.debug({ peer, err: err.message }, "shared relay: server side closed");
      });
    },
    (err: Error) => {
      logger.warn({ peer, err: err.message }, "shared relay: stream refused");
      socket.destroy();
    },
  );
}

/** A node that serves a shared volume now: its id, and its replication port. */
export interface ServingNode {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
}

/** How a node offers one shared volume to its own clients. */
export interface ShareEndpointOptions {
  readonly volumeId: string;
  /** The loopback address the endpoint listens on. */
  readonly host: string;
  /** The port the endpoint listens on: fixed per volume, so a client's address never changes. */
  readonly port: number;
  /** This node's certificate as it is now (renewals replace it). */
  readonly identity: () => NodeIdentity;
  /** The node that serves the volume now, as the store says; undefined while none does (a failover). */
  readonly locate: () => Promise<ServingNode | undefined>;
  /** Whether a certificate serial is revoked (the list as last read). */
  readonly revoked?: (serial: string) => boolean;
  readonly logger: Logger;
  /**
   * Milliseconds a client's connection waits for a server to take it (a failover in progress) before it is closed:
   * a client sees a pause, then its own retry, never a refusal while a server may come.
   * @default 60000
   */
  readonly waitMs?: number;
}

const RETRY_MS = [100, 200, 500, 1_000];

/**
 * A client node's half of the relay: a loopback port for one shared volume. Each connection a local NFS client opens
 * goes over the cluster's mutual TLS to whichever node serves the volume when it connects. When that node goes the
 * connection ends; the client reconnects to the same address and reaches the node that serves it next.
 */
export class ShareEndpoint {
  private readonly server: Server;
  private readonly clients = new Set<Socket>();
  private waitingClients = 0;

  private constructor(private readonly options: ShareEndpointOptions) {
    this.server = createServer({ pauseOnConnect: true }, (client) => this.relay(client));
  }

  static async open(options: ShareEndpointOptions): Promise<ShareEndpoint> {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(options.host)) {
      throw new InputError("shared.invalid", "host: must be a loopback IPv4 address", "host");
    }
    VolumeId.parse(options.volumeId);
    const endpoint = new ShareEndpoint(options);
    await new Promise<void>((resolve, reject) => {
      endpoint.server.once("error", reject);
      endpoint.server.listen(options.port, options.host, () => resolve());
    });
    return endpoint;
  }

  /** The address local NFS clients connect to. */
  get address(): { host: string; port: number } {
    const address = this.server.address();
    const port = typeof address === "object" && address ? address.port : this.options.port;
    return { host: this.options.host, port };
  }

  /** Client connections held while no server takes them (a failover in progress). */
  get waiting(): number {
    return this.waitingClients;
  }

  private relay(client: Socket): void {
    this.clients.add(client);
    client.once("close", () => this.clients.delete(client));
    client.on("error", () => client.destroy());
    client.setNoDelay(true);
    const until = Date.now() + (this.options.waitMs ?? 60_000);
    let waiting = false;
    const wait = (now: boolean) => {
      if (waiting !== now) this.waitingClients += now ? 1 : -1;
      waiting = now;
    };
    const attempt = async (n: number): Promise<void> => {
      if (client.destroyed) return wait(false);
      const serving = await this.options.locate().catch(() => undefined);
      const upstream = serving ? await this.dial(serving).catch((err: Error) => err) : undefined;
      if (upstream && !(upstream instanceof Error)) {
        wait(false);
        splice(client, upstream, Buffer.alloc(0));
        return;
      }
      wait(true);
      if (Date.now() > until) {
        wait(false);
        this.options.logger.warn(
          { volume: this.options.volumeId, why: upstream?.message ?? "no node serves it" },
          "shared endpoint: no server in time, closing the client's connection",
        );
        client.destroy();
        return;
      }
      const delay = RETRY_MS[Math.min(n, RETRY_MS.length - 1)] ?? 1_000;
      setTimeout(() => void attempt(n + 1), delay).unref();
    };
    void attempt(0);
  }

  /** Opens a relayed stream to the serving node; resolves once it said OK. */
  private async dial(serving: ServingNode): Promise<TLSSocket> {
    const tls = clientTlsOptions(this.options.identity(), serving.nodeId, this.options.revoked);
    const socket = connectTls({
      ...tls,
      host: serving.host,
      port: serving.port,
      ALPNProtocols: [RELAY_PROTOCOL],
    });
    socket.setNoDelay(true);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", () => resolve());
        socket.once("error", reject);
      });
      if (socket.alpnProtocol !== RELAY_PROTOCOL)
        throw new Error(`node ${serving.nodeId} does not relay NFS`);
      socket.write(`${this.options.volumeId}\n`);
      const { line, rest } = await readLine(socket, HEADER_TIMEOUT_MS);
      if (line !== "OK") throw new Error(`node ${serving.nodeId}: ${line}`);
      if (rest.length > 0) socket.unshift(rest);
      return socket;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** Stops listening and ends every relayed connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const client of this.clients) client.destroy();
    await closed;
  }
}
