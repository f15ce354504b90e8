/** go-plugin's side of the provider: the handshake, AutoMTLS, the gRPC services and hclog logging. */
export { createLogger, hclogTimestamp, type Level, type Logger, redact } from "./log.js";
export { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, serve } from "./serve.js";
