import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { NodeStatus } from "../../cluster/index.js";
import { ConflictError, SpecError } from "../../errors.js";
import { lookupKey, MAX_SIZE, type PartialVolumeSpec, specFromFields } from "../../volume-spec/index.js";
import {
  memberIndex,
  membersOf,
  type VolumeService,
  type VolumeSetView,
  type VolumeView,
} from "../../volumes/index.js";
import { keyValue } from "../docker-plugin/index.js";
import { checkGrowable } from "./bind-mounts.js";
import type {
  ControllerPublishRequest,
  CreateVolumeRequest,
  ExpandRequest,
  GetCapacityRequest,
  ListVolumesRequest,
  Topology,
  ValidateRequest,
  VolumeIdRequest,
} from "./messages.js";
import { CsiError, need, unary } from "./status.js";
import {
  capabilityProblem,
  checkCapability,
  csiSet,
  csiVolume,
  findSet,
  findVolume,
  mustFindSet,
  mustFindVolume,
  setNameOf,
  setVolumeId,
  sizeFor,
  ZONE_KEY,
} from "./volumes.js";

/** Spec keys whose refusal means there is no room where the volume may go. */
const PLACEMENT_KEYS = new Set(["zones", "nodes", "racks", "repl"]);

/** Parameters the Kubernetes external-provisioner adds about the claim (with --extra-create-metadata). */
const KUBERNETES_PREFIX = "csi.storage.k8s.io/";

export interface ControllerOptions {
  volumes: VolumeService;
  /** This node's id: the volume service attaches and detaches here only. */
  nodeId: string;
  /** The cluster's nodes, for zones, liveness and free space. */
  nodes: () => Promise<NodeStatus[]>;
  logger: Logger;
}

/**
 * The CSI Controller service. The volume_id is Holdfast's volume id; the name (Kubernetes' `pvc-<uid>`) is the
 * volume's name. StorageClass parameters are spec keys; capacity comes from capacity_range, the file system from
 * the mount capability. Publishing a volume to a node only checks that it can be attached there: the volume
 * service attaches on the node that mounts it, which is NodeStageVolume on that node.
 */
export function controllerService(o: ControllerOptions) {
  const { volumes, logger } = o;
  const zones = async () => new Map((await o.nodes()).map((n) => [n.id, n.zone]));

  async function createVolume(req: CreateVolumeRequest) {
    const name = need(req.name, "name");
    const capabilities = need(req.volume_capabilities, "volume_capabilities");
    if (req.volume_content_source) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        "volume_content_source: snapshots and clones are not supported yet",
      );
    }
    const asked = specFromParameters(name, req.parameters);
    const isSet = (asked.scale ?? 1) > 1;
    for (const c of capabilities) checkCapability(c, isSet);
    const fsTypes = [...new Set(capabilities.map((c) => c.mount?.fs_type).filter((f) => !!f))];
    if (fsTypes.length > 1) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        `volume_capabilities ask for several file systems: ${fsTypes}`,
      );
    }
    if (fsTypes[0]) {
      const fs = specFromFields({ fs: fsTypes[0] }).fs;
      if (asked.fs !== undefined && asked.fs !== fs) {
        throw new CsiError(status.INVALID_ARGUMENT, `parameters say fs=${asked.fs} but fs_type is ${fs}`);
      }
      asked.fs = fs;
    }
    asked.size = sizeFor(req.capacity_range, asked.blockSize);
    const requisite = zonesOf(req.accessibility_requirements?.requisite ?? []);
    const preferred = zonesOf(req.accessibility_requirements?.preferred ?? []);
    const fromTopology = asked.zones === undefined && requisite.length + preferred.length > 0;
    if (fromTopology) asked.zones = [...new Set([...preferred, ...requisite])];

    const limit = req.capacity_range?.limit_bytes ?? 0;
    const made = await placed(fromTopology, () =>
      isSet ? ensureSet(asked, limit) : ensureVolume(asked, limit),
    );
    const zoneOf = await zones();
    const volume =
      made.kind === "set"
        ? csiSet(made.set, (n) => zoneOf.get(n))
        : csiVolume(made.view, (n) => zoneOf.get(n));
    const landed = volume.accessible_topology.map((t) => t.segments[ZONE_KEY]);
    if (requisite.length > 0 && !landed.some((z) => z !== undefined && requisite.includes(z))) {
      // Only `zones=` in the parameters can send a volume outside the requisite zones; never keep one made so.
      if (made.created) {
        const undo = made.kind === "set" ? volumes.deleteSet(name) : volumes.delete(name);
        await undo.catch(() => undefined);
      }
      throw new CsiError(
        status.RESOURCE_EXHAUSTED,
        `could not place volume "${name}" in zones ${requisite.join(", ")} (it landed in ${landed.join(", ")})`,
      );
    }
    logger.info({ volume: name, id: volume.volume_id, scale: asked.scale ?? 1 }, "csi volume created");
    return { volume };
  }

  /** The volume a CreateVolume asks for: made, or found from an earlier call and checked against the request. */
  async function ensureVolume(asked: PartialVolumeSpec & { name: string }, limit: number): Promise<Made> {
    const existing = await findVolume(volumes, asked.name, "name");
    if (existing) {
      checkSame(existing, asked, limit);
      return { kind: "volume", view: existing, created: false };
    }
    try {
      return { kind: "volume", view: await volumes.create(asked), created: true };
    } catch (err) {
      // A retry of the same CreateVolume racing the first one: answer with the volume it made.
      if (!(err instanceof ConflictError && err.code === "volume.exists")) throw err;
      const raced = await findVolume(volumes, asked.name, "name");
      if (!raced) throw err;
      checkSame(raced, asked, limit);
      return { kind: "volume", view: raced, created: false };
    }
  }

  /** The set a CreateVolume with `scale` > 1 asks for (VolumeService.createSet, as REST, Terraform and Docker). */
  async function ensureSet(asked: PartialVolumeSpec & { name: string }, limit: number): Promise<Made> {
    const existing = await findSet(volumes, setVolumeId(asked.name));
    if (existing) {
      for (const m of existing.members) checkSame(m, { ...asked, name: m.name }, limit);
      return { kind: "set", set: existing, created: false };
    }
    return { kind: "set", set: await volumes.createSet(asked), created: true };
  }

  /** Runs `make`, turning a refusal to place the volume where the topology asks into RESOURCE_EXHAUSTED. */
  async function placed(fromTopology: boolean, make: () => Promise<Made>): Promise<Made> {
    try {
      return await make();
    } catch (err) {
      if (err instanceof SpecError && fromTopology && PLACEMENT_KEYS.has(err.field ?? "")) {
        throw new CsiError(
          status.RESOURCE_EXHAUSTED,
          `cannot place the volume as the topology asks: ${err.message}`,
        );
      }
      throw err;
    }
  }

  async function deleteVolume(req: VolumeIdRequest) {
    const id = need(req.volume_id, "volume_id");
    const set = await findSet(volumes, id);
    if (set) {
      await volumes.deleteSet(set.name);
      return {};
    }
    const view = await findVolume(volumes, id);
    if (view) await volumes.delete(view.name);
    return {};
  }

  async function controllerPublishVolume(req: ControllerPublishRequest) {
    const id = need(req.volume_id, "volume_id");
    const nodeId = need(req.node_id, "node_id");
    const capability = need(req.volume_capability, "volume_capability");
    const isSet = setNameOf(id) !== undefined;
    checkCapability(capability, isSet);
    const nodes = await o.nodes();
    if (isSet) await mustFindSet(volumes, id);
    if (!nodes.some((n) => n.id === nodeId)) {
      throw new CsiError(status.NOT_FOUND, `node ${nodeId} is not in the cluster`);
    }
    // A set's member for the node is chosen when the node stages it (mountFreeMember).
    if (isSet) return { publish_context: { node: nodeId } };
    const view = await mustFindVolume(volumes, id);
    const holder =
      view.attachedOn && view.attachedOn !== nodeId ? nodes.find((n) => n.id === view.attachedOn) : undefined;
    if (holder?.state === "up") {
      throw new CsiError(
        status.FAILED_PRECONDITION,
        `volume "${view.name}" is attached on node ${holder.id}, which is up: unpublish it there first`,
      );
    }
    // A holder that is down is taken over by NodeStageVolume on the new node (failover).
    return { publish_context: { node: nodeId } };
  }

  async function controllerUnpublishVolume(req: VolumeIdRequest & { node_id: string }) {
    const id = need(req.volume_id, "volume_id");
    const set = await findSet(volumes, id);
    if (set) {
      for (const m of set.members) await unpublishVolume(m, req.node_id);
      return {};
    }
    return unpublishVolume(await findVolume(volumes, id), req.node_id);
  }

  async function unpublishVolume(view: VolumeView | undefined, nodeId: string) {
    if (!view?.attachedOn || (nodeId && view.attachedOn !== nodeId)) return {};
    if (view.attachedOn === o.nodeId) {
      await volumes.detach(view.name);
      return {};
    }
    const holder = (await o.nodes()).find((n) => n.id === view.attachedOn);
    if (holder?.state !== "up") return {};
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `volume "${view.name}" is still attached on node ${view.attachedOn}: NodeUnstageVolume it there first`,
    );
  }

  async function validateVolumeCapabilities(req: ValidateRequest) {
    const id = need(req.volume_id, "volume_id");
    const capabilities = need(req.volume_capabilities, "volume_capabilities");
    const isSet = setNameOf(id) !== undefined;
    const view = isSet ? (await mustFindSet(volumes, id)).members[0] : await mustFindVolume(volumes, id);
    for (const c of capabilities) {
      const problem = capabilityProblem(c, isSet) ?? (view && fsProblem(view, c.mount?.fs_type));
      if (problem) return { message: problem };
    }
    return {
      confirmed: {
        volume_context: req.volume_context,
        volume_capabilities: req.volume_capabilities,
        parameters: req.parameters,
      },
    };
  }

  async function listVolumes(req: ListVolumesRequest) {
    if (req.max_entries < 0) throw new CsiError(status.INVALID_ARGUMENT, "max_entries cannot be negative");
    const all = csiEntries(await volumes.list());
    const start = req.starting_token === "" ? 0 : Number(req.starting_token);
    if (!Number.isInteger(start) || start < 0 || start > all.length) {
      throw new CsiError(
        status.ABORTED,
        `starting_token "${req.starting_token}" is not one this plugin gave`,
      );
    }
    const end = req.max_entries > 0 ? Math.min(all.length, start + req.max_entries) : all.length;
    const zoneOf = await zones();
    return {
      entries: all.slice(start, end).map((entry) => {
        const of = (n: string) => zoneOf.get(n);
        const views = entry.kind === "set" ? entry.set.members : [entry.view];
        const nodes = [...new Set(views.map((v) => v.attachedOn).filter((n) => n !== null))];
        return {
          volume: entry.kind === "set" ? csiSet(entry.set, of) : csiVolume(entry.view, of),
          status: { published_node_ids: nodes },
        };
      }),
      next_token: end < all.length ? String(end) : "",
    };
  }

  async function getCapacity(req: GetCapacityRequest) {
    const zone = req.accessible_topology?.segments[ZONE_KEY];
    const free = (await o.nodes())
      .filter((n) => n.state === "up" && (zone === undefined || n.zone === zone))
      .reduce((sum, n) => sum + n.free, 0);
    return { available_capacity: free, maximum_volume_size: { value: MAX_SIZE } };
  }

  async function controllerExpandVolume(req: ExpandRequest) {
    const id = need(req.volume_id, "volume_id");
    const range = need(req.capacity_range, "capacity_range");
    if (setNameOf(id) !== undefined) {
      await mustFindSet(volumes, id);
      throw new CsiError(
        status.INVALID_ARGUMENT,
        `volume ${id} is a set: its members grow one by one (holdfast volume update NAME.N --size)`,
      );
    }
    const view = await mustFindVolume(volumes, id);
    const size = sizeFor(range, view.blockSize);
    if (size <= view.size) {
      if (range.limit_bytes > 0 && view.size > range.limit_bytes) {
        throw new CsiError(status.OUT_OF_RANGE, `volume is ${view.size} bytes already, over limit_bytes`);
      }
      return { capacity_bytes: view.size, node_expansion_required: false };
    }
    if (view.attachedOn && view.attachedOn !== o.nodeId) {
      // The volume service grows a volume where it is attached: NodeExpandVolume on that node does it all.
      return { capacity_bytes: size, node_expansion_required: true };
    }
    await checkGrowable(view, o.nodeId);
    await volumes.resize(view.name, size);
    return { capacity_bytes: size, node_expansion_required: false };
  }

  const rpc = (type: string) => ({ rpc: { type } });
  return {
    CreateVolume: unary("CreateVolume", logger, createVolume),
    DeleteVolume: unary("DeleteVolume", logger, deleteVolume),
    ControllerPublishVolume: unary("ControllerPublishVolume", logger, controllerPublishVolume),
    ControllerUnpublishVolume: unary("ControllerUnpublishVolume", logger, controllerUnpublishVolume),
    ValidateVolumeCapabilities: unary("ValidateVolumeCapabilities", logger, validateVolumeCapabilities),
    ListVolumes: unary("ListVolumes", logger, listVolumes),
    GetCapacity: unary("GetCapacity", logger, getCapacity),
    ControllerExpandVolume: unary("ControllerExpandVolume", logger, controllerExpandVolume),
    ControllerGetCapabilities: unary("ControllerGetCapabilities", logger, async () => ({
      capabilities: [
        "CREATE_DELETE_VOLUME",
        "PUBLISH_UNPUBLISH_VOLUME",
        "LIST_VOLUMES",
        "LIST_VOLUMES_PUBLISHED_NODES",
        "GET_CAPACITY",
        "EXPAND_VOLUME",
      ].map(rpc),
    })),
  };
}

/** StorageClass parameters as spec keys; the claim's own size and name come from the request. */
function specFromParameters(name: string, parameters: Record<string, string>): PartialVolumeSpec {
  const keys = Object.fromEntries(
    Object.entries(parameters).filter(([k]) => !k.startsWith(KUBERNETES_PREFIX)),
  );
  for (const reserved of ["name", "size"]) {
    if (reserved in keys) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        `parameters: "${reserved}" comes from the request (${reserved === "size" ? "capacity_range" : "name"})`,
      );
    }
  }
  return { ...specFromFields(keys), ...specFromFields({ name }), name };
}

/** What a CreateVolume made or found: one volume, or a set. */
type Made =
  | { kind: "volume"; view: VolumeView; created: boolean }
  | { kind: "set"; set: VolumeSetView; created: boolean };

/** One entry of ListVolumes: a volume, or a set standing for its members. */
type Entry = { kind: "volume"; view: VolumeView } | { kind: "set"; set: VolumeSetView };

/** The volumes as CSI lists them: each set once, where its first member is, instead of its members. */
function csiEntries(all: VolumeView[]): Entry[] {
  const entries: Entry[] = [];
  const listed = new Set<string>();
  for (const view of all) {
    const base = view.scale > 1 ? view.name.replace(/\.\d+$/, "") : view.name;
    if (base === view.name || memberIndex(base, view.scale, view.name) === undefined) {
      entries.push({ kind: "volume", view });
    } else if (!listed.has(base)) {
      listed.add(base);
      entries.push({
        kind: "set",
        set: { name: base, scale: view.scale, members: membersOf(all, base, view.scale) },
      });
    }
  }
  return entries;
}

function zonesOf(topologies: Topology[]): string[] {
  return topologies.map((t) => t.segments[ZONE_KEY]).filter((z): z is string => !!z);
}

/** A CreateVolume of an existing name must ask for what exists: a size within the range, the same keys. */
function checkSame(view: VolumeView, asked: PartialVolumeSpec, limit: number): void {
  const sizeOk = view.size >= (asked.size ?? 0) && (limit === 0 || view.size <= limit);
  const differs = Object.entries(asked).filter(
    ([field, value]) =>
      field !== "size" && keyValue(field, view[field as keyof VolumeView]) !== keyValue(field, value),
  );
  if (!sizeOk || differs.length > 0) {
    const what = sizeOk
      ? differs.map(([field]) => lookupKey(field)?.name ?? field).join(", ")
      : `size (${view.size} bytes)`;
    throw new CsiError(status.ALREADY_EXISTS, `volume "${view.name}" exists with a different ${what}`);
  }
}

function fsProblem(view: VolumeView, fsType: string | undefined): string | undefined {
  return fsType && fsType !== view.fs ? `volume has fs=${view.fs}, not ${fsType}` : undefined;
}
