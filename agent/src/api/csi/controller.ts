import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { NodeStatus } from "../../cluster/index.js";
import { ConflictError, SpecError } from "../../errors.js";
import { lookupKey, MAX_SIZE, type PartialVolumeSpec, specFromFields } from "../../volume-spec/index.js";
import type { VolumeService, VolumeView } from "../../volumes/index.js";
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
  csiVolume,
  findVolume,
  mustFindVolume,
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
    for (const c of need(req.volume_capabilities, "volume_capabilities")) checkCapability(c);
    if (req.volume_content_source) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        "volume_content_source: snapshots and clones are not supported yet",
      );
    }
    const asked = specFromParameters(name, req.parameters);
    const fsTypes = [...new Set(req.volume_capabilities.map((c) => c.mount?.fs_type).filter((f) => !!f))];
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

    let view = await findVolume(volumes, name, "name");
    let created = false;
    if (view) {
      checkSame(view, asked, req.capacity_range?.limit_bytes ?? 0);
    } else {
      try {
        view = await volumes.create(asked);
        created = true;
      } catch (err) {
        if (err instanceof SpecError && fromTopology && PLACEMENT_KEYS.has(err.field ?? "")) {
          throw new CsiError(
            status.RESOURCE_EXHAUSTED,
            `cannot place the volume as the topology asks: ${err.message}`,
          );
        }
        // A retry of the same CreateVolume racing the first one: answer with the volume it made.
        if (!(err instanceof ConflictError && err.code === "volume.exists")) throw err;
        view = await findVolume(volumes, name, "name");
        if (!view) throw err;
        checkSame(view, asked, req.capacity_range?.limit_bytes ?? 0);
      }
    }
    const zoneOf = await zones();
    const volume = csiVolume(view, (n) => zoneOf.get(n));
    const placed = volume.accessible_topology.map((t) => t.segments[ZONE_KEY]);
    if (requisite.length > 0 && !placed.some((z) => z !== undefined && requisite.includes(z))) {
      // Only `zones=` in the parameters can send a volume outside the requisite zones; never keep one made so.
      if (created) await volumes.delete(view.name).catch(() => undefined);
      throw new CsiError(
        status.RESOURCE_EXHAUSTED,
        `could not place volume "${name}" in zones ${requisite.join(", ")} (it landed in ${placed.join(", ")})`,
      );
    }
    logger.info({ volume: name, id: view.id, spec: view.spec }, "csi volume created");
    return { volume };
  }

  async function deleteVolume(req: VolumeIdRequest) {
    const view = await findVolume(volumes, need(req.volume_id, "volume_id"));
    if (view) await volumes.delete(view.name);
    return {};
  }

  async function controllerPublishVolume(req: ControllerPublishRequest) {
    const id = need(req.volume_id, "volume_id");
    const nodeId = need(req.node_id, "node_id");
    checkCapability(need(req.volume_capability, "volume_capability"));
    const view = await mustFindVolume(volumes, id);
    const nodes = await o.nodes();
    if (!nodes.some((n) => n.id === nodeId)) {
      throw new CsiError(status.NOT_FOUND, `node ${nodeId} is not in the cluster`);
    }
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
    const view = await findVolume(volumes, need(req.volume_id, "volume_id"));
    if (!view?.attachedOn || (req.node_id && view.attachedOn !== req.node_id)) return {};
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
    const view = await mustFindVolume(volumes, id);
    for (const c of capabilities) {
      const problem = capabilityProblem(c) ?? fsProblem(view, c.mount?.fs_type);
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
    const all = await volumes.list();
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
      entries: all.slice(start, end).map((v) => ({
        volume: csiVolume(v, (n) => zoneOf.get(n)),
        status: { published_node_ids: v.attachedOn ? [v.attachedOn] : [] },
      })),
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
  const spec = { ...specFromFields(keys), ...specFromFields({ name }), name };
  // A CSI volume is one volume; a set would need NodePublish to pick a member per pod, which is not built.
  if ((spec.scale ?? 1) > 1) {
    throw new CsiError(
      status.INVALID_ARGUMENT,
      `parameters: scale=${spec.scale} makes a set of volumes, which CSI cannot serve yet; give each pod its own claim (a StatefulSet's volumeClaimTemplates)`,
    );
  }
  return spec;
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
