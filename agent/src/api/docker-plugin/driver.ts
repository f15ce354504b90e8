import type { Logger } from "pino";
import { ConflictError, NotFoundError, OperationError } from "../../errors.js";
import { type PartialVolumeSpec, parseSpec } from "../../volume-spec/index.js";
import {
  describeMembers,
  memberName,
  membersOf,
  mountFreeMember,
  type VolumeService,
  type VolumeView,
} from "../../volumes/index.js";
import { checkCompatible, readDockerName } from "./names.js";

/** A Docker volume name read: one volume, or a set of up to `scale` volumes (`scale=N` in the spec). */
type Target =
  | { kind: "volume"; name: string; asked: PartialVolumeSpec }
  | { kind: "set"; name: string; scale: number; asked: PartialVolumeSpec };

/** One volume in Docker's terms (VolumeDriver.Get and List). */
export interface DockerVolume {
  Name: string;
  Mountpoint: string;
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

/**
 * The Docker volume driver on this node, over the VolumeService. Docker calls Mount once per container start with
 * the container's ID; the first Mount of a volume mounts it, later ones share that mount, and the Unmount of the
 * last holder unmounts and detaches it. The holders live in this process: an agent that restarts has unmounted
 * everything anyway (VolumeService.recover).
 *
 * A name with `scale=N` stands for the set `NAME.1` ... `NAME.N`; each Mount for a new container takes a member
 * that no other container uses: a detached one, else one attached on a node that is down (VolumeService.mount
 * takes it over, or refuses when that node is alive), else a new one. Every member keeps `scale=N` in its own
 * spec, which is how a bare name (`docker volume create --name cache -o scale=3`) is known as a set later. Create
 * makes every member at once (VolumeService.createSet), as the REST API, CSI and Terraform do.
 */
export class DockerVolumeDriver {
  /** Container IDs holding each volume mounted here through this plugin, by volume name. */
  private readonly holders = new Map<string, Set<string>>();
  /** Calls on one Docker name (a set and its members share one) run one at a time, in order. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly volumes: VolumeService,
    private readonly nodeId: string,
    private readonly logger: Logger,
  ) {}

  create(given: string, opts: Record<string, string>): Promise<void> {
    const asked = readDockerName(given, opts);
    return this.serial(asked.name, async () => {
      const target = await this.resolve(asked);
      if (target.kind === "volume") {
        await this.ensure(target.asked);
        return;
      }
      const single = await this.find(target.name);
      if (single) {
        throw new ConflictError(
          "volume.incompatible",
          `volume "${target.name}" exists as a single volume; scale=${target.scale} asks for a set of volumes ${memberName(target.name, 1)} to ${memberName(target.name, target.scale)}`,
          "scale",
        );
      }
      if ((await this.members(target)).length === 0) {
        try {
          await this.volumes.createSet({ ...target.asked, scale: target.scale });
          return;
        } catch (err) {
          // Another node made it first (two containers of one app starting at once): fine if it matches.
          if (!(err instanceof ConflictError && err.code === "volume.exists")) throw err;
        }
      }
      for (const member of await this.members(target)) checkCompatible(member, target.asked);
    });
  }

  remove(given: string): Promise<void> {
    const asked = readDockerName(given);
    return this.serial(asked.name, async () => {
      const target = await this.resolve(asked);
      if (target.kind === "volume") {
        await this.volumes.delete(target.name);
        this.holders.delete(target.name);
        return;
      }
      const members = await this.members(target);
      if (members.length === 0) throw new NotFoundError("volume", target.name);
      const busy = members.filter((m) => m.attachedOn !== null);
      if (busy.length > 0) {
        throw new ConflictError(
          "volume.attached",
          `set "${target.name}" still has volumes in use: ${describeMembers(busy)}; unmount them first`,
          "name",
        );
      }
      for (const m of members) await this.volumes.delete(m.name);
    });
  }

  /** Mounts the volume (or a free member of a set) for container `id`; `signal` aborts when Docker gave up. */
  mount(given: string, id: string, signal?: AbortSignal): Promise<string> {
    const asked = readDockerName(given);
    return this.serial(asked.name, async () => {
      const target = await this.resolve(asked);
      const view =
        target.kind === "volume" ? await this.mountVolume(target.name) : await this.mountMember(target, id);
      if (signal?.aborted) {
        // Docker was told this Mount failed and will not Unmount it: undo it unless others hold the volume.
        if (!this.holders.get(view.name)?.size) await this.volumes.unmount(view.name);
        throw new OperationError("plugin.timeout", `mount of "${view.name}" finished after Docker gave up`);
      }
      const holders = this.holders.get(view.name) ?? new Set<string>();
      this.holders.set(view.name, holders.add(id));
      this.logger.info({ volume: view.name, container: id, holders: holders.size }, "docker mount");
      return mountPoint(view);
    });
  }

  unmount(given: string, id: string): Promise<void> {
    const asked = readDockerName(given);
    return this.serial(asked.name, async () => {
      const target = await this.resolve(asked);
      const name = target.kind === "volume" ? target.name : this.heldMember(target, id);
      const holders = this.holders.get(name);
      if (!holders) {
        // The plugin unmounts only what it mounted, never a mount made with the CLI or the API.
        await this.mustFind(name);
        throw new ConflictError(
          "volume.not_mounted",
          `volume "${name}" is not mounted on ${this.nodeId} for container ${id || "(no ID)"}`,
          "name",
        );
      }
      holders.delete(id);
      if (holders.size > 0) return;
      this.holders.delete(name);
      await this.volumes.unmount(name);
      this.logger.info({ volume: name, container: id }, "docker unmount: last holder gone");
    });
  }

  /** Where the volume is mounted on this node, or "" when it is not; for a set, its one member mounted here. */
  async path(given: string): Promise<string> {
    const target = await this.resolve(readDockerName(given));
    if (target.kind === "volume") return this.mountedHere(await this.mustFind(target.name));
    const here = (await this.members(target)).map((m) => this.mountedHere(m)).filter((p) => p !== "");
    return here.length === 1 ? (here[0] as string) : "";
  }

  async get(given: string): Promise<DockerVolume> {
    const target = await this.resolve(readDockerName(given));
    if (target.kind === "volume") {
      const view = await this.mustFind(target.name);
      return {
        Name: given,
        Mountpoint: this.mountedHere(view),
        CreatedAt: view.createdAt,
        Status: status(view),
      };
    }
    const members = await this.members(target);
    const here = members.map((m) => this.mountedHere(m)).filter((p) => p !== "");
    return {
      Name: given,
      Mountpoint: here.length === 1 ? (here[0] as string) : "",
      Status: { scale: target.scale, members: members.map(status) },
    };
  }

  async list(): Promise<DockerVolume[]> {
    return (await this.volumes.list()).map((v) => ({ Name: v.name, Mountpoint: this.mountedHere(v) }));
  }

  /**
   * A name with `scale` > 1 is a set; so is a name without `scale` that is no volume itself but whose first
   * member is one with `scale` > 1. Anything else is one volume.
   */
  private async resolve(asked: PartialVolumeSpec): Promise<Target> {
    if (asked.scale !== undefined && asked.scale > 1) {
      return { kind: "set", name: asked.name, scale: asked.scale, asked };
    }
    if (asked.scale === undefined && !(await this.find(asked.name))) {
      const first = await this.find(memberName(asked.name, 1));
      if (first && first.scale > 1) {
        // The set's keys are its first member's, with what this call says on top (checked when creating).
        const recorded = parseSpec(first.spec);
        return { kind: "set", name: asked.name, scale: first.scale, asked: { ...recorded, ...asked } };
      }
    }
    return { kind: "volume", name: asked.name, asked };
  }

  /** The volume a create asks for: made if missing, else checked against what is asked. */
  private async ensure(asked: PartialVolumeSpec): Promise<VolumeView> {
    const existing = await this.find(asked.name);
    if (existing) {
      checkCompatible(existing, asked);
      return existing;
    }
    try {
      return await this.volumes.create(asked);
    } catch (err) {
      // Another node created it first (two containers of one app starting at once): fine if it matches.
      const raced =
        err instanceof ConflictError && err.code === "volume.exists" && (await this.find(asked.name));
      if (!raced) throw err;
      checkCompatible(raced, asked);
      return raced;
    }
  }

  private async mountVolume(name: string): Promise<VolumeView> {
    await this.mustFind(name);
    return this.volumes.mount(name);
  }

  /** A member of the set for container `id`: the one it holds already, else a free one (see the class doc). */
  private mountMember(set: Extract<Target, { kind: "set" }>, id: string): Promise<VolumeView> {
    return mountFreeMember(this.volumes, set, {
      nodeId: this.nodeId,
      held: (m) => this.holders.get(m.name)?.has(id) === true,
      mount: (name) => this.volumes.mount(name),
    });
  }

  /** The member of `set` that container `id` holds here. */
  private heldMember(set: Extract<Target, { kind: "set" }>, id: string): string {
    for (let i = 1; i <= set.scale; i++) {
      const name = memberName(set.name, i);
      if (this.holders.get(name)?.has(id)) return name;
    }
    throw new ConflictError(
      "volume.not_mounted",
      `no volume of set "${set.name}" is mounted on ${this.nodeId} for container ${id || "(no ID)"}`,
      "name",
    );
  }

  /** The existing members of a set, by index. */
  private async members(set: Extract<Target, { kind: "set" }>): Promise<VolumeView[]> {
    return membersOf(await this.volumes.list(), set.name, set.scale);
  }

  /** The volume called `name` (a name, not an id), or undefined. */
  private async find(name: string): Promise<VolumeView | undefined> {
    try {
      const view = await this.volumes.inspect(name);
      return view.name === name ? view : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  private async mustFind(name: string): Promise<VolumeView> {
    const view = await this.find(name);
    if (!view) throw new NotFoundError("volume", name);
    return view;
  }

  private mountedHere(view: VolumeView): string {
    return view.attachedOn === this.nodeId && view.mountPath ? view.mountPath : "";
  }

  /** Runs `fn` after every earlier call on the same Docker name has finished. */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    const settled = next.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return next;
  }
}

function mountPoint(view: VolumeView): string {
  if (!view.mountPath) throw new OperationError("volume.mount", `volume "${view.name}" has no mount point`);
  return view.mountPath;
}

/** What `docker volume inspect` shows under Status. */
function status(view: VolumeView): Record<string, unknown> {
  return {
    name: view.name,
    spec: view.spec,
    state: view.state,
    attachedOn: view.attachedOn,
    mountPath: view.mountPath,
    size: view.size,
    repl: view.repl,
  };
}
