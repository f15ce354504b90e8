import { z } from "zod";
import type { NodeStatus } from "../cluster/index.js";
import { NAME_PATTERN } from "../names.js";
import { changeFromFields, ONLINE_KEYS, specFromInput, volumeKeysJsonSchema } from "../volume-spec/index.js";
import type { QuarantineRecord, Recovery, VolumeService } from "../volumes/index.js";
import * as answers from "./responses.js";
import { route } from "./route.js";
import { type ApiTokens, ROLES } from "./tokens.js";

/** What the API reports about the cluster. */
export interface ClusterInfo {
  cluster: () => Promise<{ id: string; store: string; nodes: NodeStatus[] }>;
  /** Replicas that no volume listed when their node started: kept until purged. */
  quarantine: Pick<Recovery, "list" | "purge">;
}

/** Which quarantined replicas to purge: one id, every one on a node, or one id on a node. */
const PurgeBody = z
  .object({
    node: z.string().regex(NAME_PATTERN, "must be a node id").optional(),
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a replica's volume id (letters, digits, '_' or '-')")
      .optional(),
  })
  .strict()
  .refine((b) => b.node !== undefined || b.id !== undefined, "give the replica's id, a node, or both")
  .describe("The quarantined replicas to destroy: `id` on any node (or on `node`), or every one on `node`.");

/** Each node with the number of its quarantined replicas. */
function withQuarantine(nodes: NodeStatus[], quarantine: QuarantineRecord[]) {
  return nodes.map((n) => ({ ...n, quarantined: quarantine.filter((q) => q.node === n.id).length }));
}

const NameParams = z.object({ name: z.string().min(1).max(255) });

const TokenBody = z
  .object({
    role: z.enum(ROLES, { error: "must be viewer, operator or admin" }),
    name: z.string().max(128).optional(),
    ttlSeconds: z
      .number()
      .int()
      .min(1, "must be at least 1 second")
      .max(10 * 365 * 86_400, "must be at most ten years")
      .optional(),
  })
  .strict()
  .describe(
    "A token's role (viewer reads; operator creates, mounts, attaches; admin also tokens and nodes), a name for people, and a TTL (none: until revoked).",
  );

const TokenParams = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/, "must be a token id (16 hex digits)"),
});

/** A volume to create: an inline `spec`, separate keys, or both (keys may not repeat what the spec says). */
const CreateBody = z
  .object({ spec: z.string().optional() })
  .catchall(z.unknown())
  .describe("Volume keys as in the inline spec grammar (see docs/volume-spec.md), and/or `spec`.");

const MountBody = z
  .object({ path: z.string().min(1).optional() })
  .strict()
  .optional();

/** A change: any volume keys, read by the spec table; only the `online` ones may differ from the volume. */
const UpdateBody = z
  .record(z.string(), z.unknown())
  .describe("Volume keys to change; see updateBodyDocument for which ones can.");

/** The update body for the OpenAPI document: the keys that change online, from the spec table. */
function updateBodyDocument(): Record<string, unknown> {
  return {
    ...volumeKeysJsonSchema(ONLINE_KEYS),
    description:
      "Keys that change in place while the volume is in use. Any other key is accepted only with its current value (409 `volume.key_immutable` otherwise); `size` only grows.",
    minProperties: 1,
  };
}

/** The create body for the OpenAPI document: `spec` plus every volume key from the spec table. */
function createBodyDocument(): Record<string, unknown> {
  const keys = volumeKeysJsonSchema();
  return {
    ...keys,
    description: "An inline `spec`, separate keys, or both; a key may not be given both ways.",
    properties: {
      spec: {
        type: "string",
        description: "Inline spec, e.g. name=pgdata,size=20G,repl=3 (or a plain name).",
      },
      ...keys.properties,
    },
  };
}

export function volumeRoutes(volumes: VolumeService, info: ClusterInfo, tokens: ApiTokens) {
  return [
    route({
      method: "POST",
      url: "/v1/tokens",
      response: answers.newToken,
      summary: "Makes an API token; the answer holds its secret, shown this once and stored only hashed.",
      role: "admin",
      body: TokenBody,
      status: 201,
      handler: ({ body }) => tokens.create(body),
    }),
    route({
      method: "GET",
      url: "/v1/tokens",
      response: answers.listOf(answers.token),
      summary: "The API tokens: id, role, name, creation and expiry (never the secrets).",
      role: "admin",
      handler: () => tokens.list(),
    }),
    route({
      method: "DELETE",
      url: "/v1/tokens/:id",
      summary: "Revokes an API token, at once and on every node.",
      role: "admin",
      params: TokenParams,
      status: 204,
      handler: async ({ params }) => {
        await tokens.revoke(params.id);
        return null;
      },
    }),
    route({
      method: "GET",
      url: "/v1/cluster",
      response: answers.cluster,
      summary: "The cluster, its nodes and a count of volumes by state.",
      handler: async () => {
        const [cluster, list, quarantine] = await Promise.all([
          info.cluster(),
          volumes.list(),
          info.quarantine.list(),
        ]);
        return {
          ...cluster,
          nodes: withQuarantine(cluster.nodes, quarantine),
          quarantine,
          volumes: {
            total: list.length,
            attached: list.filter((v) => v.state === "attached").length,
            detached: list.filter((v) => v.state === "detached").length,
            degraded: list.filter((v) => v.health === "degraded").map((v) => v.name),
          },
        };
      },
    }),
    route({
      method: "GET",
      url: "/v1/nodes",
      response: answers.listOf(answers.nodeStatus),
      summary: "Nodes of the cluster, each with the number of its quarantined replicas.",
      handler: async () => {
        const [cluster, quarantine] = await Promise.all([info.cluster(), info.quarantine.list()]);
        return withQuarantine(cluster.nodes, quarantine);
      },
    }),
    route({
      method: "GET",
      url: "/v1/quarantine",
      response: answers.listOf(answers.quarantined),
      summary: "Replicas that no volume listed when their node started: kept until purged or their TTL.",
      handler: () => info.quarantine.list(),
    }),
    route({
      method: "POST",
      url: "/v1/quarantine/purge",
      response: answers.listOf(answers.quarantined),
      summary: "Destroys quarantined replicas (never one a volume lists); answers those destroyed.",
      role: "admin",
      body: PurgeBody,
      handler: ({ body }) => info.quarantine.purge(body),
    }),
    route({
      method: "GET",
      url: "/v1/volumes",
      response: answers.listOf(answers.volumeView),
      summary: "Every volume.",
      handler: () => volumes.list(),
    }),
    route({
      method: "POST",
      url: "/v1/volumes",
      response: { oneOf: [answers.volumeView, answers.volumeSet] },
      summary:
        "Creates a volume from an inline spec and/or separate keys. With `scale` above 1 it creates the set NAME.1 to NAME.N and answers with the set (`name`, `scale`, `members`), as GET /v1/volume-sets/NAME does.",
      body: CreateBody,
      documentedBody: createBodyDocument(),
      status: 201,
      handler: ({ body: { spec, ...fields } }) => {
        const asked = specFromInput(spec, fields);
        return (asked.scale ?? 1) > 1 ? volumes.createSet(asked) : volumes.create(asked);
      },
    }),
    route({
      method: "GET",
      url: "/v1/volume-sets/:name",
      response: answers.volumeSet,
      summary: "A volume set (a name created with scale above 1): its scale and its members.",
      params: NameParams,
      handler: ({ params }) => volumes.inspectSet(params.name),
    }),
    route({
      method: "DELETE",
      url: "/v1/volume-sets/:name",
      summary:
        "Deletes every member of a volume set; refused, deleting nothing, while any member is attached.",
      params: NameParams,
      status: 204,
      handler: async ({ params }) => {
        await volumes.deleteSet(params.name);
        return null;
      },
    }),
    route({
      method: "GET",
      url: "/v1/volumes/:name",
      response: answers.volumeView,
      summary: "One volume, by name or id.",
      params: NameParams,
      handler: ({ params }) => volumes.inspect(params.name),
    }),
    route({
      method: "PATCH",
      url: "/v1/volumes/:name",
      response: answers.volumeView,
      summary: `Changes a volume in place while in use: ${ONLINE_KEYS.map((k) => k.name).join(", ")}.`,
      params: NameParams,
      body: UpdateBody,
      documentedBody: updateBodyDocument(),
      handler: ({ params, body }) => volumes.update(params.name, changeFromFields(body)),
    }),
    route({
      method: "POST",
      url: "/v1/volumes/:name/check",
      response: answers.check,
      summary:
        "Compares every in-sync replica region by region: `identical` says whether they agree, `differing` lists the regions (4 MiB each) where they do not.",
      params: NameParams,
      handler: async ({ params }) => {
        const result = await volumes.check(params.name);
        return { ...result, identical: result.differing.length === 0 };
      },
    }),
    route({
      method: "DELETE",
      url: "/v1/volumes/:name",
      summary: "Deletes a detached volume and its replicas.",
      params: NameParams,
      status: 204,
      handler: async ({ params }) => {
        await volumes.delete(params.name);
        return null;
      },
    }),
    route({
      method: "POST",
      url: "/v1/volumes/:name/attach",
      response: answers.volumeView,
      summary: "Attaches the volume on this node and serves it over NBD.",
      params: NameParams,
      handler: ({ params }) => volumes.attach(params.name),
    }),
    route({
      method: "POST",
      url: "/v1/volumes/:name/detach",
      response: answers.volumeView,
      summary: "Stops serving the volume on this node.",
      params: NameParams,
      handler: ({ params }) => volumes.detach(params.name),
    }),
    route({
      method: "POST",
      url: "/v1/volumes/:name/mount",
      response: answers.volumeView,
      summary: "Attaches, makes the file system on first use, and mounts the volume on this node.",
      params: NameParams,
      body: MountBody,
      handler: ({ params, body }) => volumes.mount(params.name, body?.path),
    }),
    route({
      method: "POST",
      url: "/v1/volumes/:name/unmount",
      response: answers.volumeView,
      summary: "Unmounts and detaches the volume on this node.",
      params: NameParams,
      handler: ({ params }) => volumes.unmount(params.name),
    }),
  ];
}
