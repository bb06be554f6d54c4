// The worker process of `npm run bench -- latency`: completes jobs when its parent asks, through jobwatch's
// Repos on a pool of its own (as a worker process does) or through the raw-SQL floor's bare pg client, and
// records when each completion call returned on the machine's monotonic clock (comparable across processes).
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Repos } from "../support/repos.js"
import { completeFloor, connectClients } from "./latencyFloor.js"
import { monotonicMs } from "./stats.js"

export type Request =
  | {
    readonly op: "complete"
    /** What to complete, in this order, `concurrency` at a time: floor rows or jobwatch jobs. */
    readonly items: ReadonlyArray<readonly ["floor" | "jobwatch", string]>
    readonly concurrency: number
  }
  | { readonly op: "times" }
  | { readonly op: "exit" }

export type Reply =
  | { readonly op: "ready" }
  | { readonly op: "times"; readonly times: Record<string, number> }

const [url, schema, workersArg] = process.argv.slice(2)
const workers = Number(workersArg)
const send = (reply: Reply) => process.send!(reply)

const runtime = ManagedRuntime.make(Repos.Default.pipe(Layer.provide(Layer.merge(
  PgClient.layer({ url: Redacted.make(url!), maxConnections: workers, applicationName: "jobwatch-bench-worker" }),
  JobWatchConfig.layer({ schema: schema! })
))))
const repo = await runtime.runPromise(Repos)
const clients = await connectClients(url!, workers)
const times: Record<string, number> = {}

let chain: Promise<unknown> = Promise.resolve()
process.on("message", (request: Request) => {
  chain = chain.then(async () => {
    if (request.op === "times") return send({ op: "times", times })
    if (request.op === "exit") {
      await Promise.all(clients.map((c) => c.end()))
      await runtime.dispose()
      return process.exit(0)
    }
    let next = 0
    const items = request.items
    const slots = Array.from({ length: Math.min(request.concurrency, clients.length) }, (_, slot) => slot)
    // jobwatch's completions run as an Effect program does, in fibers; the floor's as bare async pg calls
    await runtime.runPromise(Effect.forEach(slots, (slot) =>
      Effect.gen(function*() {
        while (next < items.length) {
          const [kind, id] = items[next++]!
          if (kind === "floor") yield* Effect.promise(() => completeFloor(clients[slot]!, schema!, id))
          else yield* Effect.orDie(repo.complete(id as JobId, { resultJson: "true" }))
          times[id] = monotonicMs()
        }
      }), { concurrency: "unbounded", discard: true }))
  }).catch((error: unknown) => {
    // a failed completion ends this process: its parent sees the exit instead of waiting for an answer
    console.error("the bench worker failed:", error)
    process.exit(1)
  })
})
// orphaned (the parent died): end too
process.on("disconnect", () => process.exit(1))
send({ op: "ready" })
