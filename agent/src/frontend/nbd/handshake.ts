import {
  errorReply,
  exportNameReply,
  infoBlockSizeReply,
  infoExportReply,
  Option,
  optionReply,
  Reply,
  serverReply,
} from "./protocol.js";

/** What the handshake tells a client about the one export a server has. */
export interface ExportInfo {
  name: string;
  size: number;
  transmissionFlags: number;
  minimumBlock: number;
  preferredBlock: number;
  maxPayload: number;
}

/** What to send back for one option, and where the session goes next. */
export interface OptionOutcome {
  replies: Buffer[];
  next: "options" | "transmission" | "close";
}

/**
 * Answers one option of fixed newstyle negotiation. Anything this server does not implement (STARTTLS,
 * STRUCTURED_REPLY, the meta-context options) gets NBD_REP_ERR_UNSUP and the session carries on, as the
 * baseline requires.
 */
export function answerOption(
  info: ExportInfo,
  option: number,
  data: Buffer,
  noZeroes: boolean,
): OptionOutcome {
  switch (option) {
    case Option.EXPORT_NAME:
      // This option cannot answer with an error: an unknown name ends the session.
      if (!servesName(info, data.toString("utf8"))) return { replies: [], next: "close" };
      return {
        replies: [exportNameReply(info.size, info.transmissionFlags, noZeroes)],
        next: "transmission",
      };
    case Option.ABORT:
      return { replies: [optionReply(option, Reply.ACK)], next: "close" };
    case Option.LIST:
      if (data.length > 0) return refuse(option, Reply.ERR_INVALID, "NBD_OPT_LIST takes no data");
      return { replies: [serverReply(option, info.name), optionReply(option, Reply.ACK)], next: "options" };
    case Option.INFO:
    case Option.GO: {
      const name = parseInfoRequest(data);
      if (name === undefined) return refuse(option, Reply.ERR_INVALID, "malformed NBD_OPT_INFO/GO data");
      if (!servesName(info, name)) return refuse(option, Reply.ERR_UNKNOWN, `no export named "${name}"`);
      // Block sizes go out whether or not they were asked for: the spec allows unrequested info replies, and
      // a client that did not ask still learns why an oversized request fails.
      return {
        replies: [
          infoExportReply(option, info.size, info.transmissionFlags),
          infoBlockSizeReply(option, info.minimumBlock, info.preferredBlock, info.maxPayload),
          optionReply(option, Reply.ACK),
        ],
        next: option === Option.GO ? "transmission" : "options",
      };
    }
    default:
      return refuse(option, Reply.ERR_UNSUP, `option ${option} is not supported`);
  }
}

/** The configured name, and "" (the default export) for clients that do not name one. */
function servesName(info: ExportInfo, name: string): boolean {
  return name === "" || name === info.name;
}

function refuse(option: number, type: number, message: string): OptionOutcome {
  return { replies: [errorReply(option, type, message)], next: "options" };
}

/** INFO/GO data: u32 name length, name, u16 count, count × u16 info types. The name, if well formed. */
function parseInfoRequest(data: Buffer): string | undefined {
  if (data.length < 6) return undefined;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) return undefined;
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) return undefined;
  return data.toString("utf8", 4, 4 + nameLength);
}
