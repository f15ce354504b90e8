import { lstat, rm } from "node:fs/promises";
import net from "node:net";
import type { BlockDevice } from "../../contracts/index.js";
import { OperationError, SpecError } from "../../errors.js";
import { type Logger, silentLogger } from "../log.js";
import { Connection, type ExportContext } from "./connection.js";

export interface NbdServerOptions {
  /** The device to serve. */
  device: BlockDevice;
  /** The export's name; clients may ask for it or for "" (the default export), not others. @default "" */
  exportName?: string;
  /** Unix socket to listen on (one per attached volume); a stale one there is replaced. This or `port`. */
  socketPath?: string;
  /** TCP host to listen on with `port`. @default every interface */
  host?: string;
  /** TCP port to listen on. This or `socketPath`. */
  port?: number;
  /** Serve read-only: writes, trims and zeroing fail with EPERM. @default false */
  readOnly?: boolean;
  /** Largest READ or WRITE payload accepted, in bytes; the advertised maximum block size. @default 32 MiB */
  maxPayload?: number;
  /** Where connection and request failures are logged; a pino logger fits. @default silent */
  logger?: Logger;
}

const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;

/** Serves one BlockDevice over the NBD protocol (fixed newstyle, simple replies) to any number of clients. */
export class NbdServer {
  private readonly server: net.Server;
  private readonly ctx: ExportContext;
  private readonly live = new Set<Connection>();
  private closing = false;

  constructor(private readonly options: NbdServerOptions) {
    const { device, socketPath, port, maxPayload = DEFAULT_MAX_PAYLOAD } = options;
    if ((socketPath === undefined) === (port === undefined)) {
      throw new SpecError("socketPath", "give exactly one of socketPath and port");
    }
    // The spec wants the maximum payload at least the preferred block size, and it travels as a u32.
    if (
      !Number.isInteger(maxPayload) ||
      maxPayload < Math.max(512, device.blockSize) ||
      maxPayload > 0xffffffff
    ) {
      throw new SpecError(
        "maxPayload",
        `must be an integer from the device's block size to 2^32-1, not ${maxPayload}`,
      );
    }
    this.ctx = {
      device,
      exportName: options.exportName ?? "",
      readOnly: options.readOnly ?? false,
      maxPayload,
      logger: options.logger ?? silentLogger,
    };
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  /** Clients connected now, in negotiation or transmission. */
  get connections(): number {
    return this.live.size;
  }

  async listen(): Promise<void> {
    const { socketPath, host, port } = this.options;
    if (socketPath !== undefined) await removeStaleSocket(socketPath);
    const where = socketPath ?? `${host ?? "*"}:${port}`;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new OperationError("nbd.listen", `cannot listen on ${where}: ${err.message}`, err));
      this.server.once("error", onError);
      this.server.listen(socketPath !== undefined ? { path: socketPath } : { host, port }, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    this.server.on("error", (err) => this.ctx.logger.error({ err }, "nbd: server error"));
    this.ctx.logger.info({ where, export: this.ctx.exportName }, "nbd: listening");
  }

  /** Stops accepting, lets in-flight requests finish, disconnects every client, removes the socket file. */
  async close(): Promise<void> {
    this.closing = true;
    // Node unlinks a listening unix socket's file when the server closes.
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.live].map((connection) => connection.close()));
    await stopped;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this.ctx);
    this.live.add(connection);
    void connection.closed.then(() => this.live.delete(connection));
  }
}

/** A socket file nobody answers on was left by an agent that died; one that answers is a live server's. */
async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat?.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (!live) await rm(path, { force: true });
}
