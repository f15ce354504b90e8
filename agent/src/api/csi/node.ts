import { resolve } from "node:path";
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { parseSpec } from "../../volume-spec/index.js";
import { mountFreeMember, type VolumeService, type VolumeView } from "../../volumes/index.js";
import { bindMount, checkGrowable, mountAt, publishedPaths, removeDir, unbindMount } from "./bind-mounts.js";
import type {
  ExpandRequest,
  NodePublishRequest,
  NodeStageRequest,
  NodeUnpublishRequest,
  NodeUnstageRequest,
} from "./messages.js";
import { CsiError, need, unary } from "./status.js";
import {
  checkCapability,
  findSet,
  findVolume,
  mustFindSet,
  mustFindVolume,
  setNameOf,
  sizeFor,
  ZONE_KEY,
} from "./volumes.js";

export interface NodeOptions {
  volumes: VolumeService;
  nodeId: string;
  /** This node's zone, its CSI topology. */
  zone: string;
  logger: Logger;
}

/**
 * The CSI Node service. Staging mounts the volume (attach, file system on first use, mount) at the staging path
 * through the volume service, taking it over from a node that is down; publishing bind-mounts the staging path
 * at each pod's target path, read-only when asked. Every call is idempotent, and calls out of order are refused
 * with the code the spec gives (unstage while published: FAILED_PRECONDITION).
 */
export function nodeService(o: NodeOptions) {
  const { volumes, logger } = o;
  const stagedHere = (view: VolumeView, path: string) =>
    view.attachedOn === o.nodeId && view.mountPath === resolve(path);

  /** The volume `id` stands for at `staging`: itself, or for a set the member staged there (if any). */
  async function volumeHere(id: string, staging: string): Promise<VolumeView | undefined> {
    if (setNameOf(id) === undefined) return mustFindVolume(volumes, id);
    const { members } = await mustFindSet(volumes, id);
    return members.find((m) => stagedHere(m, staging));
  }

  async function nodeStageVolume(req: NodeStageRequest) {
    const id = need(req.volume_id, "volume_id");
    const staging = resolve(need(req.staging_target_path, "staging_target_path"));
    const capability = need(req.volume_capability, "volume_capability");
    const setName = setNameOf(id);
    checkCapability(capability, setName !== undefined);
    if (setName !== undefined) return stageSetMember(id, staging, capability.mount?.fs_type);
    const view = await mustFindVolume(volumes, id);
    const fsType = capability.mount?.fs_type;
    if (fsType && fsType !== view.fs) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        `volume_capability: volume has fs=${view.fs}, not ${fsType}`,
      );
    }
    if (stagedHere(view, staging)) return {};
    if (view.attachedOn === o.nodeId && view.mountPath) {
      throw new CsiError(status.ALREADY_EXISTS, `volume ${id} is staged at ${view.mountPath} on this node`);
    }
    // kubelet chooses the staging path, outside the mount root, and asks over its host-local socket.
    await volumes.mount(view.name, staging, { anywhere: true });
    logger.info({ volume: view.name, staging }, "csi volume staged");
    return {};
  }

  /** Stages a member of a set: the one staged here already, else a free one, as Docker's Mount takes one. */
  async function stageSetMember(id: string, staging: string, fsType: string | undefined) {
    const set = await mustFindSet(volumes, id);
    const fs = set.members[0]?.fs;
    if (fsType && fs && fsType !== fs) {
      throw new CsiError(
        status.INVALID_ARGUMENT,
        `volume_capability: volume set has fs=${fs}, not ${fsType}`,
      );
    }
    const asked = set.members[0] ? parseSpec(set.members[0].spec) : {};
    const view = await mountFreeMember(
      volumes,
      { name: set.name, scale: set.scale, asked: { ...asked, name: set.name } },
      {
        nodeId: o.nodeId,
        held: (m) => stagedHere(m, staging),
        mount: (name) => volumes.mount(name, staging, { anywhere: true }),
      },
    );
    logger.info({ volume: view.name, set: set.name, staging }, "csi set member staged");
    return {};
  }

  async function nodeUnstageVolume(req: NodeUnstageRequest) {
    const id = need(req.volume_id, "volume_id");
    const staging = resolve(need(req.staging_target_path, "staging_target_path"));
    const view = await volumeHere(id, staging);
    if (!view || !stagedHere(view, staging)) return {};
    const published = await publishedPaths(staging);
    if (published.length > 0) {
      throw new CsiError(
        status.FAILED_PRECONDITION,
        `volume ${id} is still published at ${published.join(", ")}: NodeUnpublishVolume first`,
      );
    }
    await volumes.unmount(view.name);
    await removeDir(staging);
    logger.info({ volume: view.name, staging }, "csi volume unstaged");
    return {};
  }

  async function nodePublishVolume(req: NodePublishRequest) {
    const id = need(req.volume_id, "volume_id");
    const staging = resolve(need(req.staging_target_path, "staging_target_path"));
    const target = resolve(need(req.target_path, "target_path"));
    const capability = need(req.volume_capability, "volume_capability");
    checkCapability(capability, setNameOf(id) !== undefined);
    const readOnly = req.readonly || capability.access_mode?.mode === "SINGLE_NODE_READER_ONLY";
    const view = await volumeHere(id, staging);
    if (!view || !stagedHere(view, staging)) {
      throw new CsiError(
        status.FAILED_PRECONDITION,
        `volume ${id} is not staged at ${staging} on ${o.nodeId}: NodeStageVolume first`,
      );
    }
    const source = await mountAt(staging);
    const existing = await mountAt(target);
    if (existing) {
      if (existing.device === source?.device && existing.readOnly === readOnly) return {};
      throw new CsiError(
        status.ALREADY_EXISTS,
        existing.device === source?.device
          ? `volume ${id} is published at ${target} ${existing.readOnly ? "read-only" : "read-write"} already`
          : `${target} holds another file system`,
      );
    }
    await bindMount(staging, target, readOnly);
    logger.info({ volume: view.name, target, readOnly }, "csi volume published");
    return {};
  }

  async function nodeUnpublishVolume(req: NodeUnpublishRequest) {
    const id = need(req.volume_id, "volume_id");
    const target = resolve(need(req.target_path, "target_path"));
    const single = setNameOf(id) === undefined ? await findVolume(volumes, id) : undefined;
    const views = single ? [single] : (await findSet(volumes, id))?.members;
    const mounted = await mountAt(target);
    if (!views) throw new CsiError(status.NOT_FOUND, `volume ${id} does not exist`);
    if (!mounted) {
      await removeDir(target);
      return {};
    }
    for (const view of views) {
      const source =
        view.attachedOn === o.nodeId && view.mountPath ? await mountAt(view.mountPath) : undefined;
      if (source && mounted.device === source.device) {
        await unbindMount(target);
        logger.info({ volume: view.name, target }, "csi volume unpublished");
        return {};
      }
    }
    throw new CsiError(status.FAILED_PRECONDITION, `${target} holds another file system than volume ${id}`);
  }

  async function nodeExpandVolume(req: ExpandRequest) {
    const id = need(req.volume_id, "volume_id");
    const path = resolve(need(req.volume_path, "volume_path"));
    if (setNameOf(id) !== undefined) {
      throw new CsiError(status.INVALID_ARGUMENT, `volume ${id} is a set: its members grow one by one`);
    }
    const view = await mustFindVolume(volumes, id);
    if (!(await mountAt(path))) throw new CsiError(status.NOT_FOUND, `volume_path ${path} is not mounted`);
    if (view.attachedOn !== o.nodeId) {
      throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} is not attached on ${o.nodeId}`);
    }
    const size = Math.max(view.size, req.capacity_range ? sizeFor(req.capacity_range, view.blockSize) : 0);
    await checkGrowable(view, o.nodeId);
    // Grows the device if ControllerExpandVolume left it to this node, and the mounted file system either way.
    await volumes.resize(view.name, size);
    return { capacity_bytes: size };
  }

  const rpc = (type: string) => ({ rpc: { type } });
  return {
    NodeStageVolume: unary("NodeStageVolume", logger, nodeStageVolume),
    NodeUnstageVolume: unary("NodeUnstageVolume", logger, nodeUnstageVolume),
    NodePublishVolume: unary("NodePublishVolume", logger, nodePublishVolume),
    NodeUnpublishVolume: unary("NodeUnpublishVolume", logger, nodeUnpublishVolume),
    NodeExpandVolume: unary("NodeExpandVolume", logger, nodeExpandVolume),
    NodeGetCapabilities: unary("NodeGetCapabilities", logger, async () => ({
      capabilities: ["STAGE_UNSTAGE_VOLUME", "EXPAND_VOLUME"].map(rpc),
    })),
    NodeGetInfo: unary("NodeGetInfo", logger, async () => ({
      node_id: o.nodeId,
      max_volumes_per_node: 0,
      accessible_topology: { segments: { [ZONE_KEY]: o.zone } },
    })),
  };
}
