import { rm } from "node:fs/promises";
import Fastify, { type FastifyBaseLogger, LogController } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { HoldfastError, OperationError, SpecError } from "../../errors.js";
import type { VolumeService } from "../../volumes/index.js";
import { httpStatusOf } from "../http-status.js";
import { DockerVolumeDriver } from "./driver.js";
import { claimSocket, restrictSocket } from "./unix-socket.js";

/** The content type of Docker's plugin protocol v1. */
export const PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json";

export interface DockerPluginOptions {
  /** Unix socket to serve on; Docker looks for `/run/docker/plugins/<driver>.sock`. */
  socketPath: string;
  volumes: VolumeService;
  /** This node's id: where mounts happen. */
  nodeId: string;
  logger: Logger;
  /**
   * Longest a call may take before it answers with an error. Docker gives up on Path, Get, List, Remove and
   * Unmount after one minute (Create and Mount after two), so the plugin answers first, with a reason.
   * @default 50_000
   */
  callTimeoutMs?: number;
}

/** A running plugin server. */
export interface DockerPlugin {
  close(): Promise<void>;
}

const Name = z.string({ error: "Name is required" }).min(1, { error: "Name is required" });
const NameOnly = z.object({ Name });
/** Docker sends Opts as null when there are none, and ID as "" from clients that predate it. */
const CreateRequest = z.object({ Name, Opts: z.record(z.string(), z.string()).nullish() });
const MountRequest = z.object({ Name, ID: z.string().default("") });
const Anything = z.unknown();

interface Call<S extends z.ZodType> {
  body: S;
  run: (body: z.output<S>, signal: AbortSignal) => Promise<Record<string, unknown>>;
}
const call = <S extends z.ZodType>(c: Call<S>) => c as unknown as Call<z.ZodType>;

/**
 * The Docker volume plugin (protocol v1, driver `holdfast`) on a unix socket: every call is a POST with a JSON
 * body, answered with JSON in Docker's field names, and errors as `{"Err": "..."}` with a 4xx or 5xx status
 * (Docker reads `Err` either way). Every call answers within `callTimeoutMs`, so Docker never hangs on it.
 */
export async function serveDockerPlugin(options: DockerPluginOptions): Promise<DockerPlugin> {
  const { socketPath, logger } = options;
  const driver = new DockerVolumeDriver(
    options.volumes,
    options.nodeId,
    logger.child({ api: "docker-plugin" }),
  );
  const timeoutMs = options.callTimeoutMs ?? 50_000;

  const calls: Record<string, Call<z.ZodType>> = {
    "/Plugin.Activate": call({ body: Anything, run: async () => ({ Implements: ["VolumeDriver"] }) }),
    "/VolumeDriver.Capabilities": call({
      body: Anything,
      run: async () => ({ Capabilities: { Scope: "global" } }),
    }),
    "/VolumeDriver.Create": call({
      body: CreateRequest,
      run: async (b) => {
        await driver.create(b.Name, b.Opts ?? {});
        return { Err: "" };
      },
    }),
    "/VolumeDriver.Remove": call({
      body: NameOnly,
      run: async (b) => {
        await driver.remove(b.Name);
        return { Err: "" };
      },
    }),
    "/VolumeDriver.Mount": call({
      body: MountRequest,
      run: async (b, signal) => ({ Mountpoint: await driver.mount(b.Name, b.ID, signal), Err: "" }),
    }),
    "/VolumeDriver.Unmount": call({
      body: MountRequest,
      run: async (b) => {
        await driver.unmount(b.Name, b.ID);
        return { Err: "" };
      },
    }),
    "/VolumeDriver.Path": call({
      body: NameOnly,
      run: async (b) => ({ Mountpoint: await driver.path(b.Name), Err: "" }),
    }),
    "/VolumeDriver.Get": call({
      body: NameOnly,
      run: async (b) => ({ Volume: await driver.get(b.Name), Err: "" }),
    }),
    "/VolumeDriver.List": call({
      body: Anything,
      run: async () => ({ Volumes: await driver.list(), Err: "" }),
    }),
  };

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    logController: new LogController({ disableRequestLogging: true }),
  });
  // Docker sends its JSON with no Content-Type at all (only an Accept header), so every body is read as JSON.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, text, done) => {
    try {
      done(null, (text as string).trim() === "" ? {} : JSON.parse(text as string));
    } catch (err) {
      done(new SpecError(undefined, `the body is not JSON: ${(err as Error).message}`), undefined);
    }
  });
  app.addHook("onSend", async (_req, reply) => {
    reply.header("content-type", PLUGIN_CONTENT_TYPE);
  });
  app.setErrorHandler((err, req, reply) => {
    const status =
      err instanceof HoldfastError ? httpStatusOf(err) : (err as { statusCode?: number }).statusCode;
    if (!status || status >= 500) req.log.error({ err, url: req.url }, "docker plugin call failed");
    else req.log.warn({ url: req.url, err: (err as Error).message }, "docker plugin call refused");
    return reply.code(status ?? 500).send({ Err: (err as Error).message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ Err: `no such plugin call: ${req.method} ${req.url}` }),
  );

  for (const [url, c] of Object.entries(calls)) {
    app.post(url, async (req) => {
      const parsed = c.body.safeParse(req.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new SpecError(issue?.path.join(".") || undefined, issue?.message ?? "invalid request");
      }
      return bounded(url, timeoutMs, (signal) => c.run(parsed.data, signal));
    });
  }

  await claimSocket(socketPath, "pluginSocket");
  await app.listen({ path: socketPath });
  await restrictSocket(socketPath);
  logger.info({ socket: socketPath }, "docker volume plugin ready");
  return {
    close: async () => {
      await app.close();
      await rm(socketPath, { force: true });
    },
  };
}

/** Runs `fn`, but answers with an error after `ms`; the work goes on, and `signal` tells it Docker gave up. */
async function bounded<T>(what: string, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(
        new OperationError(
          "plugin.timeout",
          `${what.slice(1)} did not finish within ${ms / 1000} s; it goes on in the agent (see its log)`,
        ),
      );
    }, ms);
  });
  try {
    return await Promise.race([fn(abort.signal), late]);
  } finally {
    clearTimeout(timer);
  }
}
