// The worker process of the benchmarks (as the harness runs its workers): on request it starts jobwatch's
// `Worker.run` (embedded through `JobWatch.layer`, as the README shows) or the raw-SQL floor's workers, with a handler
// that waits a random delay and stamps its end on the machine's monotonic clock; on stop it lets the handlers finish
// and answers the stamps, which the parent compares with when its waiters resolved.
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Scope } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import * as JobWatch from "../../src/JobWatch.js"
import * as Worker from "../../src/Workers/Worker.js"
import { rawFloorWorker } from "./rawFloor.js"
import { monotonicMs } from "./stats.js"

export interface StartRequest {
  readonly op: "start"
  readonly kind: "floor" | "jobwatch"
  readonly queue: string
  readonly concurrency: number
  readonly delayMinMs: number
  readonly delayMaxMs: number
}
export type Request = StartRequest | { readonly op: "stop" } | { readonly op: "exit" }
export type Reply =
  | { readonly op: "ready" }
  | { readonly op: "started" }
  | { readonly op: "stopped"; readonly stamps: Record<string, number> }

const [url, schema] = process.argv.slice(2)
const send = (reply: Reply) => process.send!(reply)

const runtime = ManagedRuntime.make(JobWatch.layer.pipe(
  Layer.provideMerge(Layer.merge(
    PgClient.layer({ url: Redacted.make(url!), maxConnections: 10, applicationName: "jobwatch-bench-worker" }),
    JobWatchConfig.layer({ schema: schema!, webhooks: false })
  )),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
))
await runtime.runPromise(Effect.void)

const delayOf = (request: StartRequest) =>
  request.delayMaxMs <= 0 ? 0 : request.delayMinMs + Math.random() * (request.delayMaxMs - request.delayMinMs)
const pause = (ms: number) => (ms <= 0 ? undefined : new Promise<void>((resolve) => setTimeout(resolve, ms)))

let stop: (() => Promise<Record<string, number>>) | undefined

const start = async (request: StartRequest) => {
  if (request.kind === "floor") {
    const worker = await rawFloorWorker(url!, schema!, request.concurrency, (_id) => pause(delayOf(request)))
    stop = async () => {
      await worker.stop()
      return Object.fromEntries(worker.stamps)
    }
    return
  }
  const stamps: Record<string, number> = {}
  const scope = await runtime.runPromise(Scope.make())
  await runtime.runPromise(Worker.run({
    queues: [request.queue],
    concurrency: request.concurrency,
    handler: (job) => {
      const ms = delayOf(request)
      return (ms <= 0 ? Effect.void : Effect.promise(() => pause(ms)!)).pipe(
        Effect.tap(() => Effect.sync(() => (stamps[job.id] = monotonicMs())))
      )
    }
  }).pipe(Scope.extend(scope)))
  stop = async () => {
    await runtime.runPromise(Scope.close(scope, Exit.void))
    return stamps
  }
}

let chain: Promise<unknown> = Promise.resolve()
process.on("message", (request: Request) => {
  chain = chain.then(async () => {
    if (request.op === "start") {
      await start(request)
      return send({ op: "started" })
    }
    if (request.op === "stop") {
      const stamps = stop === undefined ? {} : await stop()
      stop = undefined
      return send({ op: "stopped", stamps })
    }
    await runtime.dispose()
    process.exit(0)
  }).catch((error: unknown) => {
    // a failure ends this process: its parent sees the exit instead of waiting for an answer
    console.error("the bench worker failed:", error)
    process.exit(1)
  })
})
// orphaned (the parent died): end too
process.on("disconnect", () => process.exit(1))
send({ op: "ready" })
