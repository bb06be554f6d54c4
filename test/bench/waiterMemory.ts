// `npm run bench -- waiterMemory`: what one waiter costs beyond the caller's own fiber (issue 18: ≤ 2 KB). N jobs stay
// pending; N fibers each `waitFor` one of them (and, for the baseline, N fibers that only wait on a Deferred); once
// every waiter is armed (its snapshot read), the heap delta over N of both, after a full GC, is what a waiter costs.
// Also: the waiter side's CPU time per outcome while those jobs complete through another pool (another process).
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Notifications } from "../../src/Notifications.js"
import { Repos } from "../support/repos.js"

const counts = [10_000, 100_000]
const workers = 10

const heapBytes = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}

export const waiterMemory = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const jobs = yield* Jobs
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
    const gcNote = (globalThis as { gc?: () => void }).gc === undefined ? " (no --expose-gc: figures are noisy)" : ""
    console.log(`waiterMemory: heap per waiting fiber after a full GC${gcNote}`)

    const enqueue = (n: number) =>
      Effect.gen(function*() {
        const ids: Array<JobId> = []
        for (let i = 0; i < n; i += 1000) {
          const refs = yield* jobs.enqueueBatch(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "mem" })))
          ids.push(...refs.map((ref) => ref.id))
        }
        return ids
      })

    /** Bytes per fiber of `make(i)` forked n times, once all are parked (and, for waiters, armed). */
    const perFiber = <A, E>(n: number, make: (i: number) => Effect.Effect<A, E>, armed: Effect.Effect<boolean>) =>
      Effect.gen(function*() {
        const before = heapBytes()
        const fibers: Array<Fiber.RuntimeFiber<A, E>> = []
        for (let i = 0; i < n; i++) fibers.push(yield* Effect.fork(make(i)))
        for (let i = 0; i < 20_000 && !(yield* armed); i++) yield* Effect.sleep(Duration.millis(2))
        yield* Effect.yieldNow()
        const after = heapBytes()
        return { bytes: (after - before) / n, fibers }
      })

    for (const n of counts) {
      const ids = yield* enqueue(n)
      const gate = yield* Deferred.make<void>()
      const base = yield* perFiber(n, () => Deferred.await(gate), Effect.succeed(true))
      yield* Fiber.interruptAll(base.fibers)
      const start = yield* notifications.stats
      const waiting = yield* perFiber(
        n,
        (i) => watcher.waitFor(ids[i]!),
        Effect.map(notifications.stats, (s) => s.jobsRead - start.jobsRead >= n)
      )
      const extra = waiting.bytes - base.bytes
      console.log(
        `  ${n} waitFor: ${waiting.bytes.toFixed(0)} B per waiting fiber, ${base.bytes.toFixed(0)} B per bare fiber: ` +
          `a waiter costs ${extra.toFixed(0)} B (target ≤ 2048: ${extra <= 2048 ? "met" : "NOT met"})`
      )
      if (n !== counts[0]) {
        yield* Fiber.interruptAll(waiting.fibers)
        continue
      }
      // the waiter side's CPU per outcome: claimed and completed by the remote pool, as by other processes
      const claimed: Array<JobId> = []
      for (let i = 0; i < n; i += 1000) {
        const batch = yield* remote.claim({ workerId: "mem", queues: ["default"], limit: 1000, leaseMs: 600_000 })
        claimed.push(...batch.map((job) => job.id))
      }
      const cpuBefore = process.cpuUsage()
      const started = performance.now()
      let next = 0
      yield* Effect.all(
        Array.from({ length: workers }, () =>
          Effect.gen(function*() {
            while (next < claimed.length) {
              const batch = claimed.slice(next, next + 20)
              next += 20
              yield* remote.completeMany(undefined, batch.map((id) => ({ id, resultJson: "true", message: null })))
            }
          })),
        { concurrency: "unbounded", discard: true }
      )
      yield* Fiber.joinAll(waiting.fibers)
      const cpu = process.cpuUsage(cpuBefore)
      const after = yield* notifications.stats
      console.log(
        `  ${n} outcomes in ${((performance.now() - started) / 1000).toFixed(2)} s; this process: ` +
          `${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU per outcome (both pools' clients included), ` +
          `${after.reads - start.reads - 0} reads (snapshots included)`
      )
    }
  }).pipe(Effect.scoped)
