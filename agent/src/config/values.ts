import { isIP } from "node:net";
import { z } from "zod";
import { NAME_PATTERN, NAME_RULE } from "../names.js";

/** A cluster, node, zone or rack name; node ids in store records are checked against the same. */
export const Name = z.string().regex(NAME_PATTERN, `must be ${NAME_RULE}`);

/** HOST:PORT: a name, an IPv4 or a bracketed IPv6 address, and a port; node records in the store are checked by it. */
export const HostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/, 'must be HOST:PORT, e.g. "127.0.0.1:9001"')
  .refine((v) => splitHostPort(v).port <= 65535, "port must be at most 65535");

/** The host and port of a HOST:PORT value: the one parser, an IPv6 host without its brackets. */
export function splitHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(":");
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(value.slice(at + 1)) };
}

/** HOST:PORT from a host and a port, an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A unix socket path, or "none"; sockaddr_un holds 107 bytes and a NUL. */
export const SocketPath = z
  .string()
  .min(1)
  .refine((v) => Buffer.byteLength(v) <= 107, "must be at most 107 bytes (the limit of a unix socket path)");
