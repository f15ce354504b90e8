import { type KeyObject, sign } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the mock answers as the instance. */
export interface MockInstance {
  instanceId: string;
  localIpv4: string;
  availabilityZone: string;
  availabilityZoneId: string;
  region: string;
  /** Instance tags readable through IMDS. */
  tags: Record<string, string>;
  /** Secrets Manager: secret id -> SecretString. */
  secrets: Record<string, string>;
  /**
   * Signs the instance identity document (`/latest/dynamic/instance-identity/signature`, SHA-256 over the document
   * as AWS's is): a test key standing in for AWS's. Absent: no identity document is served.
   */
  identityKey?: KeyObject;
}

export const MOCK_ROLE = "holdfast-node-test";
export const MOCK_CREDENTIALS = {
  AccessKeyId: "S3RVER",
  SecretAccessKey: "S3RVER",
  Token: "session-token-1",
};

/**
 * Stands in for what only EC2 has: the instance metadata service (IMDSv2 only: a request without a session
 * token gets 401, as with `http_tokens = required`) and Secrets Manager's GetSecretValue, which answers only
 * requests signed with SigV4 for the secretsmanager service and carrying the role's session token.
 */
export class AwsMock {
  /** Every request, as "METHOD path", for assertions. */
  readonly requests: string[] = [];
  private readonly tokens = new Set<string>();
  private constructor(
    private readonly server: Server,
    readonly instance: MockInstance,
  ) {}

  static async start(instance: MockInstance): Promise<AwsMock> {
    const server = createServer();
    const mock = new AwsMock(server, instance);
    server.on("request", (req, res) => {
      mock.handle(req).then(
        ([status, body]) => {
          res.writeHead(status, { "content-type": "text/plain" });
          res.end(body);
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return mock;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private async handle(req: IncomingMessage): Promise<[number, string]> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    const path = req.url ?? "/";
    this.requests.push(`${req.method} ${path}`);
    if (req.method === "PUT" && path === "/latest/api/token") {
      if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return [400, "missing TTL"];
      const token = `imds-${this.tokens.size + 1}`;
      this.tokens.add(token);
      return [200, token];
    }
    if (path.startsWith("/latest/meta-data/")) {
      if (!this.tokens.has(String(req.headers["x-aws-ec2-metadata-token"])))
        return [401, "IMDSv2 token required"];
      const value = this.metadata(path.slice("/latest/meta-data/".length));
      return value === undefined ? [404, "not found"] : [200, value];
    }
    if (path.startsWith("/latest/dynamic/instance-identity/")) {
      if (!this.tokens.has(String(req.headers["x-aws-ec2-metadata-token"])))
        return [401, "IMDSv2 token required"];
      const key = this.instance.identityKey;
      if (!key) return [404, "not found"];
      const document = this.identityDocument();
      if (path.endsWith("/document")) return [200, document];
      if (path.endsWith("/signature")) {
        // Base64 in 64-character lines, as IMDS serves it.
        const b64 = sign("sha256", Buffer.from(document), key).toString("base64");
        return [200, (b64.match(/.{1,64}/g) ?? []).join("\n")];
      }
      return [404, "not found"];
    }
    if (req.method === "POST" && req.headers["x-amz-target"] === "secretsmanager.GetSecretValue") {
      const auth = String(req.headers.authorization ?? "");
      const scope = `Credential=${MOCK_CREDENTIALS.AccessKeyId}/`;
      if (!auth.startsWith("AWS4-HMAC-SHA256 ") || !auth.includes(scope))
        return [403, "not signed with SigV4"];
      if (!auth.includes(`/${this.instance.region}/secretsmanager/aws4_request`)) return [403, "wrong scope"];
      if (req.headers["x-amz-security-token"] !== MOCK_CREDENTIALS.Token) return [403, "no session token"];
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      const value = this.instance.secrets[SecretId];
      if (value === undefined) return [400, JSON.stringify({ __type: "ResourceNotFoundException" })];
      return [200, JSON.stringify({ ARN: SecretId, SecretString: value })];
    }
    return [404, "not found"];
  }

  /** The instance identity document, in AWS's shape (pretty-printed JSON). */
  identityDocument(): string {
    const i = this.instance;
    return JSON.stringify(
      {
        accountId: "123456789012",
        availabilityZone: i.availabilityZone,
        instanceId: i.instanceId,
        privateIp: i.localIpv4,
        region: i.region,
        version: "2017-09-30",
      },
      null,
      2,
    );
  }

  private metadata(key: string): string | undefined {
    const i = this.instance;
    const values: Record<string, string> = {
      "instance-id": i.instanceId,
      "local-ipv4": i.localIpv4,
      "placement/availability-zone": i.availabilityZone,
      "placement/availability-zone-id": i.availabilityZoneId,
      "placement/region": i.region,
      "iam/security-credentials/": MOCK_ROLE,
      [`iam/security-credentials/${MOCK_ROLE}`]: JSON.stringify({ Code: "Success", ...MOCK_CREDENTIALS }),
    };
    if (key.startsWith("tags/instance/")) return i.tags[key.slice("tags/instance/".length)];
    return values[key];
  }
}
