// `npm run bench -- waiters`: 10,000 jobs awaited at once by one process (one `waitForAll`) while workers
// on another pool (as another process) complete them: queries issued by the waiting side per awaited job
// (target ≤ 0.05) and heap growth (target ≤ 25 MB).
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Repos } from "../support/repos.js"
import { Notifications } from "../../src/Notifications.js"
import { median } from "./stats.js"

const jobsPerRound = 10_000
const workers = 10
const rounds = 3

const heapMb = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed / 1024 / 1024
}

export const waiters = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const jobs = yield* Jobs
    const repo = yield* Repos
    const watcher = yield* CompletionWatcher
    const notifications = yield* Notifications
    const remote = Context.get(
      yield* Layer.build(
        Repos.Default.pipe(
          Layer.provide(Layer.merge(
            PgClient.layer({ url: Redacted.make(url), maxConnections: workers }),
            JobWatchConfig.layer({ schema })
          ))
        )
      ),
      Repos
    )
    const gcNote = (globalThis as { gc?: () => void }).gc === undefined ? " (no --expose-gc: heap figures are noisy)" : ""

    const round = Effect.gen(function*() {
      const queue = `waiters-${Math.random().toString(36).slice(2)}`
      const ids: Array<JobId> = []
      for (let i = 0; i < jobsPerRound; i += 1000) {
        yield* jobs.enqueueBatch(Array.from({ length: 1000 }, () => ({ name: "bench", queue })))
      }
      // claimed here; completed by the remote workers below
      for (let i = 0; i < jobsPerRound; i += 1000) {
        const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: 1000, leaseMs: 600_000 })
        ids.push(...claimed.map((job) => job.id))
      }
      const heapBefore = heapMb()
      const before = yield* notifications.stats
      const started = performance.now()
      const all = yield* Effect.fork(watcher.waitForAll(ids))
      // wait for every registration's snapshot before measuring the heap at its peak
      for (let i = 0; i < 5000 && (yield* notifications.stats).jobsRead - before.jobsRead < ids.length; i++) {
        yield* Effect.sleep(Duration.millis(2))
      }
      const heapPeak = heapMb()
      let next = 0
      yield* Effect.all(
        Array.from({ length: workers }, () =>
          Effect.gen(function*() {
            while (next < ids.length) {
              const id = ids[next++]!
              yield* remote.complete(id, { resultJson: "true" })
            }
          })),
        { concurrency: "unbounded", discard: true }
      )
      const outcomes = yield* Fiber.join(all)
      const elapsed = performance.now() - started
      const after = yield* notifications.stats
      if (outcomes.some((o) => o.status !== "completed")) return yield* Effect.die("a waiter got the wrong outcome")
      const heapAfter = heapMb()
      return {
        queriesPerJob: (after.reads - before.reads) / ids.length,
        reads: after.reads - before.reads,
        heapGrowthMb: heapPeak - heapBefore,
        heapAfterMb: heapAfter - heapBefore,
        seconds: elapsed / 1000,
        left: yield* notifications.watchedCount
      }
    })

    yield* round // warm-up, discarded
    const results: Array<Effect.Effect.Success<typeof round>> = []
    for (let i = 0; i < rounds; i++) results.push(yield* round)
    const q = median(results.map((r) => r.queriesPerJob))
    const heap = median(results.map((r) => r.heapGrowthMb))
    console.log(`waiters: ${jobsPerRound} jobs awaited at once, completed by ${workers} workers on another pool${gcNote}`)
    for (const [i, r] of results.entries()) {
      console.log(
        `  round ${i + 1}: ${r.reads} reads = ${r.queriesPerJob.toFixed(4)} per job, heap +${r.heapGrowthMb.toFixed(1)} MB at peak ` +
          `(+${r.heapAfterMb.toFixed(1)} MB after), ${r.seconds.toFixed(2)} s, ${r.left} jobs still watched`
      )
    }
    console.log(`  median: ${q.toFixed(4)} queries per awaited job (target ≤ 0.05: ${q <= 0.05 ? "met" : "NOT met"})`)
    console.log(`  median: heap +${heap.toFixed(1)} MB at peak (target ≤ 25 MB: ${heap <= 25 ? "met" : "NOT met"})`)
  }).pipe(Effect.scoped)
