import { apiDiagnostic, HoldfastClient } from "./client.js";
import type { AttributeSchema, CtyType, ObjectValue } from "./protocol/index.js";
import type { DataSourceType, ProviderContext, Result } from "./types.js";

/* Model: the cluster the provider talks to, and every node that ever joined it, up or down. */

const NODE: CtyType = [
  "object",
  {
    id: "string",
    api: "string",
    zone: "string",
    rack: "string",
    state: "string",
    capacity: "number",
    free: "number",
  },
];

const schema = {
  description: "Reads the Holdfast cluster the provider is configured for: its name and its nodes.",
  attributes: [
    {
      name: "id",
      type: "string",
      computed: true,
      description: "The cluster's id (the agents' `--cluster`).",
    },
    {
      name: "name",
      type: "string",
      computed: true,
      description: "The cluster's name; today the same as its id.",
    },
    { name: "store", type: "string", computed: true, description: "The metadata store: `etcd` or `local`." },
    {
      name: "nodes",
      type: ["list", NODE],
      computed: true,
      description:
        "Every node that joined: `id`, `api` (its REST API), `zone`, `rack`, `state` (`up` or `down`), " +
        "`capacity` and `free` (bytes in its storage pools when it joined).",
    },
    {
      name: "volume_count",
      type: "number",
      computed: true,
      description: "How many volumes the cluster has.",
    },
  ] satisfies AttributeSchema[],
};

async function read(ctx: ProviderContext): Promise<Result<ObjectValue | null>> {
  const client = ctx.client();
  if (!(client instanceof HoldfastClient)) return { value: null, diagnostics: [client] };
  try {
    const cluster = await client.cluster(ctx.stopSignal);
    const nodes = cluster.nodes.map((node) => ({
      id: node.id,
      api: node.api,
      zone: node.zone,
      rack: node.rack,
      state: node.state,
      capacity: node.capacity,
      free: node.free,
    }));
    const value = {
      id: cluster.id,
      name: cluster.id,
      store: cluster.store,
      nodes,
      volume_count: cluster.volumes.total,
    };
    return { value, diagnostics: [] };
  } catch (err) {
    return { value: null, diagnostics: [apiDiagnostic(err, "Cannot read the cluster")] };
  }
}

export const clusterDataSource: DataSourceType = {
  typeName: "holdfast_cluster",
  schema,
  validate: () => [],
  read,
};
