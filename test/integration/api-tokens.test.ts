import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AgentProcess } from "../support/agent-process.js";
import { waitFor } from "../support/dev-cluster.js";

// Scoped API tokens and the audit log, against a real agent: the node's own token is the first admin token; the
// tokens it makes are checked for their role on every route, revoked at once, and every change and refusal is in
// <data-dir>/audit.log.
let agent: AgentProcess;

test.before(async () => {
  agent = await AgentProcess.start();
});
test.after(async () => {
  await agent?.destroy();
});

interface Made {
  id: string;
  role: string;
  token: string;
  expiresAt: string | null;
}

const make = (role: string, ...extra: string[]) =>
  agent.json<Made>("token", "create", "--role", role, "--name", `a ${role}`, ...extra);

interface AuditLine {
  token: string | null;
  role: string | null;
  method: string;
  url: string;
  status: number;
  outcome: string;
}

/** The audit log's lines, once it has one that `matches` (it is written asynchronously). */
async function audited(matches: (line: AuditLine) => boolean): Promise<AuditLine[]> {
  return waitFor("the audit line", async () => {
    const text = await readFile(join(agent.dir, "data", "audit.log"), "utf8").catch(() => "");
    const lines = text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditLine);
    return lines.some(matches) ? lines : undefined;
  });
}

test("a viewer reads and cannot create; an operator creates and cannot make tokens; each refusal is audited", async () => {
  const viewer = await make("viewer");
  const operator = await make("operator");
  assert.match(viewer.token, /^hf1\.[0-9a-f]{16}\./);

  assert.is((await agent.api("GET", "/v1/volumes", undefined, viewer.token)).status, 200);
  const refused = await agent.api("POST", "/v1/volumes", { spec: "name=v1,size=16M" }, viewer.token);
  assert.is(refused.status, 403);
  assert.is(refused.body.error.code, "auth.forbidden");
  assert.match(refused.body.error.message, "role viewer) may not POST /v1/volumes: that needs role operator");

  const created = await agent.api("POST", "/v1/volumes", { spec: "name=v1,size=16M" }, operator.token);
  assert.ok(created.status < 300, JSON.stringify(created.body));
  const escalate = await agent.api("POST", "/v1/tokens", { role: "admin" }, operator.token);
  assert.is(escalate.status, 403);
  assert.is((await agent.api("POST", "/v1/quarantine/purge", { node: "node1" }, operator.token)).status, 403);

  const lines = await audited((l) => l.token === operator.id && l.url === "/v1/quarantine/purge");
  const find = (token: string, method: string, url: string) =>
    lines.find((l) => l.token === token && l.method === method && l.url === url);
  assert.equal(
    [find(viewer.id, "POST", "/v1/volumes")?.outcome, find(viewer.id, "POST", "/v1/volumes")?.status],
    ["refused", 403],
  );
  assert.equal(find(operator.id, "POST", "/v1/volumes")?.outcome, "done");
  assert.equal(find(operator.id, "POST", "/v1/tokens")?.outcome, "refused");
  assert.equal(find("bootstrap", "POST", "/v1/tokens")?.role, "admin", "the node's own token made both");
  assert.not.match(JSON.stringify(lines), viewer.token.split(".")[2] as string, "no secret in the audit log");
});

test("a revoked token and an expired one get 401, on the next request; list never shows a secret", async () => {
  const operator = await make("operator");
  assert.is((await agent.api("GET", "/v1/volumes", undefined, operator.token)).status, 200);
  await agent.json("token", "revoke", operator.id);
  const revoked = await agent.api("GET", "/v1/volumes", undefined, operator.token);
  assert.is(revoked.status, 401);
  assert.is(revoked.body.error.code, "auth.required");
  await audited((l) => l.token === null && l.status === 401);

  const brief = await make("viewer", "--ttl", "1s");
  assert.ok(brief.expiresAt);
  await waitFor("the token to expire", async () =>
    (await agent.api("GET", "/v1/volumes", undefined, brief.token)).status === 401 ? true : undefined,
  );

  const listed = await agent.json<Array<Record<string, unknown>>>("token", "list");
  assert.ok(listed.some((t) => t.id === brief.id));
  assert.not.ok(
    listed.some((t) => t.id === operator.id),
    "a revoked token is gone",
  );
  assert.not.match(JSON.stringify(listed), /hash|token"|hf1\./);
  assert.is((await stat(join(agent.dir, "data", "audit.log"))).mode & 0o777, 0o600);
});

test("bad token input: a role that does not exist, a malformed TTL, a malformed id", async () => {
  const role = await agent.cli("token", "create", "--role", "root");
  assert.is(role.code, 2, role.stderr);
  assert.match(role.stderr, "role: must be viewer, operator or admin");
  const ttl = await agent.cli("token", "create", "--role", "viewer", "--ttl", "soon");
  assert.is(ttl.code, 2);
  assert.match(ttl.stderr, "ttl: must be seconds");
  const id = await agent.cli("token", "revoke", "../x");
  assert.is(id.code, 2, id.stderr);
  assert.match(id.stderr, "id: must be a token id");
});

test.run();
