import { request } from "node:http";

/** What a Docker volume plugin answers: a status and a JSON body with `Err` (empty on success) and more. */
export interface PluginAnswer {
  status: number;
  body: { Err?: string; Mountpoint?: string } & Record<string, unknown>;
}

/** Calls a volume plugin on its unix socket as dockerd does: POST, Docker's content type, a JSON body. */
export function callPlugin(socketPath: string, path: string, body: unknown): Promise<PluginAnswer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: "POST",
        headers: {
          "content-type": "application/vnd.docker.plugins.v1+json",
          "content-length": Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
