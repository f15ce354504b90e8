import { test } from "uvu";
import * as assert from "uvu/assert";
import { ApiError, HoldfastClient } from "../../providers/src/client.js";
import { createLogger } from "../../providers/src/plugin/log.js";
import { AgentProcess } from "../support/agent-process.js";
import { waitFor } from "../support/dev-cluster.js";

// The provider's API client (got) against a real agent: retries with backoff carry a request over an agent
// restart, a refused token and a missing volume are told apart, and a request can be cancelled.

let agent: AgentProcess;
const logged: string[] = [];
const logger = createLogger("provider.test", "debug", (line) => logged.push(line));

const client = (options: Partial<ConstructorParameters<typeof HoldfastClient>[0]> = {}) =>
  new HoldfastClient({
    endpoint: agent.url,
    token: agent.token,
    requestTimeoutMs: 10_000,
    maxRetries: 8,
    logger,
    ...options,
  });

test.before(async () => {
  agent = await AgentProcess.start();
});

test.after(async () => {
  await agent?.destroy();
});

test("a create sent while the agent is down is retried with backoff and lands once it is back", async () => {
  await agent.stop();
  const pending = client().createVolume({ name: "retried", size: "64M" });
  // Back once the client has been refused at least once and is retrying: the event, not a guess at its timing.
  await waitFor("the client to retry", async () =>
    logged.some((line) => line.includes('"retrying request"') && line.includes("ECONNREFUSED"))
      ? true
      : undefined,
  );
  await agent.restart();
  const view = await pending;
  assert.is(view.name, "retried");
  assert.ok(logged.some((line) => line.includes('"retrying request"') && line.includes("ECONNREFUSED")));
  assert.ok(
    logged.every((line) => !line.includes(agent.token)),
    "the token is never logged",
  );
  const volumes = (await agent.api("GET", "/v1/volumes")).body as Array<{ name: string }>;
  assert.equal(
    volumes.map((v) => v.name),
    ["retried"],
    "created exactly once",
  );
});

test("a refused token, a missing volume and a conflict are told apart", async () => {
  const refused = await client({ token: "wrong" })
    .cluster()
    .catch((err: unknown) => err);
  assert.instance(refused, ApiError);
  assert.is((refused as ApiError).status, 401);
  assert.is(await client().volume("no-such-volume"), null);
  await client().deleteVolume("no-such-volume");
  const twice = await client()
    .createVolume({ name: "retried" })
    .catch((err: unknown) => err);
  assert.instance(twice, ApiError);
  assert.is((twice as ApiError).status, 409);
  const bad = await client()
    .createVolume({ name: "bad", size: "12Q" })
    .catch((err: unknown) => err);
  assert.is((bad as ApiError).field, "size");
});

test("an unreachable agent fails after the retries, and a cancelled request stops at once", async () => {
  const down = client({ endpoint: "http://127.0.0.1:1", maxRetries: 1 });
  const err = await down.cluster().catch((e: unknown) => e);
  assert.instance(err, ApiError);
  assert.is((err as ApiError).code, "ECONNREFUSED");
  assert.match((err as ApiError).message, "cannot reach the Holdfast agent at http://127.0.0.1:1");
  const controller = new AbortController();
  const slow = client({ endpoint: "http://127.0.0.1:1", maxRetries: 8 }).cluster(controller.signal);
  controller.abort();
  const cancelled = await slow.catch((e: unknown) => e);
  assert.instance(cancelled, ApiError);
  assert.is((cancelled as ApiError).code, "aborted");
});

test.run();
