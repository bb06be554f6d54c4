// `jobwatch worker --queue q ./handlers.ts`: `Worker.run` with the handlers a module exports, over SQL
// (DATABASE_URL) or the HTTP API (`--url`). Loaded by the bundled command from the built modules
// (`dist/Cli/runWorker.js`), so that the handlers' Effect (when they answer one) is the package's; it answers
// Promises, and stops when its signal is aborted (Ctrl-C, SIGTERM), letting running jobs finish within the grace.
import { FetchHttpClient } from "@effect/platform"
import { Duration, Effect, Layer } from "effect"
import { pathToFileURL } from "node:url"
import { httpWorkerBackend } from "../client.js"
import { JobWatchConfig } from "../Config.js"
import * as Database from "../Database.js"
import type { ClaimedJob } from "../Domain/Worker.js"
import * as JobWatch from "../JobWatch.js"
import * as Worker from "../Workers/Worker.js"
import { oneLine } from "./oneLine.js"

/** What a handler is given beside the job's payload. */
export interface HandlerContext {
  readonly job: ClaimedJob
  readonly workerId: string
  /** Aborted when the job's cancellation is requested, its timeout passes or the worker stops. */
  readonly signal: AbortSignal
  /** Reports progress: percent (0–100, never backwards), with an optional step and message. */
  readonly progress: (percent: number, options?: { readonly step?: string; readonly message?: string }) => Promise<void>
}

/** A handler: its value (or its Promise's, or its Effect's) is the job's result; a throw fails the attempt. */
export type Handler = (payload: unknown, context: HandlerContext) => unknown

export interface WorkerCommandOptions {
  readonly module: string
  readonly queues: ReadonlyArray<string>
  readonly concurrency: number
  readonly workerId?: string | undefined
  readonly shutdownGraceMs: number
  /** Over the HTTP API; over SQL (DATABASE_URL) without it. */
  readonly http?: { readonly url: string; readonly token: string } | undefined
  readonly signal: AbortSignal
  /** A line for the user (stdout). */
  readonly say: (line: string) => void
}

const isHandler = (value: unknown): value is Handler => typeof value === "function"

/**
 * The handlers of a module: its default export when that is a function (every job), else one per job name, from
 * its named exports and the keys of a default export object (`export default { "send-email": … }`).
 */
export const handlersOf = (exports: Record<string, unknown>): Handler | Map<string, Handler> => {
  const fallback = exports["default"]
  if (isHandler(fallback)) return fallback
  const byName = new Map<string, Handler>()
  const sources = [
    typeof fallback === "object" && fallback !== null ? Object.entries(fallback) : [],
    Object.entries(exports).filter(([name]) => name !== "default")
  ]
  for (const [name, value] of sources.flat()) if (isHandler(value)) byName.set(name, value)
  return byName
}

/** A module's exports; a CommonJS module compiled from ESM (a `.ts` outside a `"type": "module"` package) unwrapped. */
const load = async (path: string): Promise<Record<string, unknown>> => {
  const url = pathToFileURL(path).href
  const exports: Record<string, unknown> = /\.[cm]?tsx?$/.test(path)
    ? await (await import("tsx/esm/api").catch(() => {
      throw new Error(`${path} is TypeScript: install tsx beside jobwatch (npm install tsx), or give a .js module`)
    })).tsImport(url, import.meta.url)
    : await import(/* @vite-ignore */ url)
  const inner = exports["default"]
  return typeof inner === "object" && inner !== null && "__esModule" in inner ? inner as Record<string, unknown> : exports
}

export const runWorker = async (options: WorkerCommandOptions): Promise<void> => {
  const handlers = handlersOf(await load(options.module))
  if (!isHandler(handlers) && handlers.size === 0) {
    throw new Error(`${options.module} exports no handler: a default function (every job), or a function per job name`)
  }
  const handlerFor = (name: string) => (isHandler(handlers) ? handlers : handlers.get(name))
  const backend = options.http === undefined
    ? JobWatch.workerLayer().pipe(Layer.provide(Database.layer), Layer.provide(JobWatchConfig.layerConfig))
    : httpWorkerBackend({ baseUrl: options.http.url.replace(/\/$/, ""), token: options.http.token }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )
  const program = Effect.gen(function*() {
    const worker = yield* Worker.run({
      queues: options.queues,
      names: isHandler(handlers) ? undefined : [...handlers.keys()],
      concurrency: options.concurrency,
      workerId: options.workerId,
      shutdownGrace: Duration.millis(options.shutdownGraceMs),
      handler: (job, ctx) => {
        const started = performance.now()
        const handler = handlerFor(job.name)
        const ran = handler === undefined
          ? Effect.fail({ code: "no_handler", message: `no handler for ${job.name}`, retryable: false })
          : Effect.tryPromise({
            try: async (signal) => {
              const out = handler(job.payload, {
                job,
                workerId: ctx.workerId,
                signal,
                progress: (percent, report) => Effect.runPromise(Effect.asVoid(ctx.progress(percent, report)))
              })
              return Effect.isEffect(out) ? await Effect.runPromise(out as Effect.Effect<unknown, unknown>, { signal }) : await out
            },
            catch: (error) => error
          })
        const took = () => `${Math.round(performance.now() - started)} ms`
        return ran.pipe(
          Effect.tap(() => Effect.sync(() => options.say(`completed ${job.id} ${job.name} in ${took()}`))),
          Effect.tapError((error) =>
            Effect.sync(() => options.say(`failed    ${job.id} ${job.name} in ${took()}: ${oneLine(error)}`))
          ),
          Effect.onInterrupt(() => Effect.sync(() => options.say(`stopped   ${job.id} ${job.name} after ${took()}`)))
        )
      }
    })
    const names = isHandler(handlers) ? "every job" : [...handlers.keys()].join(", ")
    options.say(`worker ${worker.workerId} on ${options.queues.join(", ")}: ${names}`)
    const aborted = Effect.async<void>((resume) => {
      if (options.signal.aborted) return resume(Effect.void)
      options.signal.addEventListener("abort", () => resume(Effect.void), { once: true })
    })
    yield* Effect.raceFirst(worker.await, aborted)
  }).pipe(Effect.scoped, Effect.provide(backend))
  await Effect.runPromise(Effect.mapError(program, (error) => new Error(oneLine(error))))
}
