import { request } from "node:http";

/** Docker's content type for volume plugin calls and answers. */
export const PLUGIN_TYPE = "application/vnd.docker.plugins.v1+json";

/** What a Docker volume plugin answers: a status, its content type, and a JSON body with `Err` (empty on success). */
export interface PluginAnswer {
  status: number;
  type: string;
  body: { Err?: string; Mountpoint?: string } & Record<string, unknown>;
}

/**
 * Calls a volume plugin on its unix socket as dockerd does: POST with an Accept header and a JSON body (`body` is
 * sent as is when it is a string: malformed JSON), with Docker's content type, or none when `contentType` is null
 * (some dockerd versions send none).
 */
export function callPlugin(
  socketPath: string,
  path: string,
  body: unknown,
  contentType: string | null = PLUGIN_TYPE,
): Promise<PluginAnswer> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: "POST",
        headers: {
          accept: "application/vnd.docker.plugins.v1.2+json",
          "content-length": Buffer.byteLength(payload),
          ...(contentType ? { "content-type": contentType } : {}),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers["content-type"]),
            body: JSON.parse(text),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
