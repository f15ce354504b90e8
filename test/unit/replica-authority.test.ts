// Who may act on a node's replicas over the replication port (replica-authority.ts), judged against a real catalog
// on the local store; test/integration/replication-authorization.test.ts drives the same through agents.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FencedError } from "../../agent/src/contracts/index.js";
import { ForbiddenError } from "../../agent/src/errors.js";
import { LocalStore } from "../../agent/src/meta/index.js";
import { withDefaults } from "../../agent/src/volume-spec/index.js";
import { ReplicaAuthority, storeKeys, VolumeCatalog } from "../../agent/src/volumes/index.js";

let dir = "";
let store: LocalStore;
let catalog: VolumeCatalog;
let authority: ReplicaAuthority;

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "hf-authority-"));
  store = await LocalStore.open(join(dir, "meta.json"));
  catalog = new VolumeCatalog(store, storeKeys("t"), (err) => assert.unreachable(err.message));
  // The replicas asked about are node "b"'s.
  authority = new ReplicaAuthority({ nodeId: "b", catalog });
});
test.after.each(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const volume = (name: string, ...nodes: string[]) =>
  catalog.create(
    withDefaults({ name, size: 16 * 1024 * 1024 }),
    nodes.map((node) => ({ node, pool: "/p", state: "in-sync" as const })),
  );

async function refusal(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof Error, "refused");
  return err as Error;
}

test("admit: only the attached node, at its epoch; an older epoch is fenced, any other is forbidden", async () => {
  const record = await volume("v", "a", "b", "c");
  await refusal(authority.admit("a", record.id, 1)).then((e) => assert.instance(e, ForbiddenError));
  const { epoch } = await catalog.attach(record.id, { node: "a", nbdSocket: "/s" });
  await authority.admit("a", record.id, epoch);
  const other = await refusal(authority.admit("c", record.id, epoch));
  assert.instance(other, ForbiddenError);
  assert.match(other.message, `c may not admit epoch ${epoch}`);
  assert.match(other.message, `a holds it at epoch ${epoch}`);
  assert.instance(await refusal(authority.admit("a", record.id, epoch + 1)), ForbiddenError);
  assert.instance(await refusal(authority.admit("c", record.id, 2 ** 40)), ForbiddenError);

  // Taken over by c: a's epoch is now stale, whoever asks with it.
  await catalog.detach(record.id, epoch);
  const moved = await catalog.attach(record.id, { node: "c", nbdSocket: "/s" });
  await authority.admit("c", record.id, moved.epoch);
  const stale = await refusal(authority.admit("a", record.id, epoch));
  assert.instance(stale, FencedError);
  assert.is((stale as FencedError).highest, moved.epoch);
});

test("create: any node while the volume has no record; afterwards only its attached node", async () => {
  await authority.create("c", "00aa");
  const record = await volume("v", "a", "b");
  assert.instance(await refusal(authority.create("c", record.id)), ForbiddenError);
  await catalog.attach(record.id, { node: "a", nbdSocket: "/s" });
  await authority.create("a", record.id);
  assert.instance(await refusal(authority.create("c", record.id)), ForbiddenError);
});

test("destroy: what a tombstone names, or what the same peer created here and no record lists; never a listed one", async () => {
  const record = await volume("v", "a", "b");
  await catalog.attach(record.id, { node: "a", nbdSocket: "/s" });
  const listed = await refusal(authority.destroy("a", record.id));
  assert.instance(listed, ForbiddenError);
  assert.match(listed.message, "the volume lists it");

  // A create undone by its creator (its record never written), and by nobody else.
  authority.created("c", "00bb");
  assert.instance(await refusal(authority.destroy("a", "00bb")), ForbiddenError);
  await authority.destroy("c", "00bb");

  // A replica no record lists (quarantined): only once a tombstone names this node for it.
  const orphan = await refusal(authority.destroy("a", "00cc"));
  assert.match(orphan.message, "no tombstone names it");
  await catalog.condemn("00cc", "b");
  await authority.destroy("a", "00cc");

  // Deleted: the tombstone names b.
  const gone = await volume("w", "a", "b");
  await catalog.remove(gone);
  await authority.destroy("c", gone.id);
});

test("condemn refuses a replica a record lists", async () => {
  const record = await volume("v", "a", "b");
  await refusal(catalog.condemn(record.id, "b")).then((e) =>
    assert.match(e.message, "lists the replica on b"),
  );
  await catalog.condemn(record.id, "c");
});

test.run();
