/**
 * The NBD frontend: serves a BlockDevice to qemu, nbd-client, fio and the kernel's nbd driver over a unix
 * socket (or TCP). Fixed newstyle negotiation, simple replies, pipelined requests. See
 * docs/decisions/0002-nbd-frontend.md.
 */
export { NbdServer, type NbdServerOptions } from "./server.js";
