// `npm run bench -- latency`: from the end of a job's handler to its waiter resolving, as the side-by-side harness
// measures it (the worker stamps its handler's end on the machine's monotonic clock; the waiter's process stamps
// when it resolved), jobwatch (`Worker.run` in another process, `CompletionWatcher.waitFor` here) beside the raw-SQL
// floor (`rawFloor.ts`: the harness's raw-pg floor, its workers in that same other process, one LISTEN connection
// here). (a) idle: one job at a time, handlers of 5–105 ms, so that the waiter is armed before the handler ends;
// (b) load: 1,000 jobs enqueued and awaited at once, then workers at concurrency 10 with no-op handlers. Rounds
// (`LATENCY_ROUNDS`, default 3) take turns at which side goes first; figures are ratios to the floor.
import { Effect, Fiber } from "effect"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Notifications } from "../../src/Notifications.js"
import { createRawFloor, rawFloorClient } from "./rawFloor.js"
import { median, monotonicMs, ms, summarize } from "./stats.js"
import { workerProcess } from "./workerProcess.js"

const idleSamples = 200
const idleWarmup = 20
const loadJobs = 1000
const loadConcurrency = 10

/** Rounds of each case: `LATENCY_ROUNDS`, at least 1; 3 when unset or not a number. */
const rounds = Math.max(1, Math.floor(Number(process.env.LATENCY_ROUNDS ?? 3)) || 3)

type Summary = ReturnType<typeof summarize>

/** Resolved minus the handler's end, per job. */
const latencies = (ids: ReadonlyArray<string>, resolved: ReadonlyMap<string, number>, ends: ReadonlyMap<string, number>) =>
  summarize(ids.map((id) => resolved.get(id)! - ends.get(id)!))

export const latency = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const jobs = yield* Jobs
    const watcher = yield* CompletionWatcher
    const notifications = yield* Notifications
    yield* Effect.promise(() => createRawFloor(url, schema))
    const raw = yield* Effect.acquireRelease(Effect.promise(() => rawFloorClient(url, schema)), (c) => Effect.promise(c.close))
    const workers = yield* workerProcess(url, schema)

    /** Waiters on `ids` that record when they resolved; answers once their registrations have been read. */
    const waitOn = (ids: ReadonlyArray<JobId>) =>
      Effect.gen(function*() {
        const before = (yield* notifications.stats).jobsRead
        const resolved = new Map<string, number>()
        const fibers = yield* Effect.forEach(ids, (id) =>
          Effect.fork(watcher.waitFor(id).pipe(Effect.tap(() => Effect.sync(() => resolved.set(id, monotonicMs()))))))
        for (let i = 0; i < 2000 && (yield* notifications.stats).jobsRead - before < ids.length; i++) {
          yield* Effect.sleep("2 millis")
        }
        return { resolved, fibers }
      })

    const idle = {
      jobwatch: Effect.gen(function*() {
        const queue = `idle-${Math.random().toString(36).slice(2)}`
        yield* workers.start({ kind: "jobwatch", queue, concurrency: 1, delayMinMs: 5, delayMaxMs: 105 })
        const ids: Array<string> = []
        const resolved = new Map<string, number>()
        for (let i = 0; i < idleWarmup + idleSamples; i++) {
          const ref = yield* jobs.enqueue({ name: "idle", queue })
          yield* watcher.waitFor(ref.id)
          resolved.set(ref.id, monotonicMs())
          if (i >= idleWarmup) ids.push(ref.id)
        }
        return latencies(ids, resolved, yield* workers.stop)
      }),
      floor: Effect.gen(function*() {
        yield* workers.start({ kind: "floor", queue: "", concurrency: 1, delayMinMs: 5, delayMaxMs: 105 })
        const ids: Array<string> = []
        const resolved = new Map<string, number>()
        for (let i = 0; i < idleWarmup + idleSamples; i++) {
          const [id] = yield* Effect.promise(() => raw.enqueue(1))
          resolved.set(id!, (yield* Effect.promise(() => raw.waitFor([id!]))).get(id!)!)
          if (i >= idleWarmup) ids.push(id!)
        }
        return latencies(ids, resolved, yield* workers.stop)
      })
    }

    const load = {
      jobwatch: Effect.gen(function*() {
        const queue = `load-${Math.random().toString(36).slice(2)}`
        const refs = yield* jobs.enqueueBatch(Array.from({ length: loadJobs }, () => ({ name: "load", queue })))
        const ids = refs.map((ref) => ref.id)
        const w = yield* waitOn(ids)
        yield* workers.start({ kind: "jobwatch", queue, concurrency: loadConcurrency, delayMinMs: 0, delayMaxMs: 0 })
        // awaited, not joined: joining 1,000 fibers merges their fiber refs, which is no part of waiting
        yield* Effect.forEach(w.fibers, Fiber.await, { discard: true })
        return latencies(ids, w.resolved, yield* workers.stop)
      }),
      floor: Effect.gen(function*() {
        const ids = yield* Effect.promise(() => raw.enqueue(loadJobs))
        let armed!: () => void
        const isArmed = new Promise<void>((resolve) => (armed = resolve))
        const all = raw.waitFor(ids, () => armed())
        yield* Effect.promise(() => isArmed)
        yield* workers.start({ kind: "floor", queue: "", concurrency: loadConcurrency, delayMinMs: 0, delayMaxMs: 0 })
        const resolved = yield* Effect.promise(() => all)
        return latencies(ids, resolved, yield* workers.stop)
      })
    }

    const figures = (s: Summary) => `p50 ${ms(s.p50).padStart(8)}  p95 ${ms(s.p95).padStart(8)}  p99 ${ms(s.p99).padStart(8)}`
    console.log("latency: handler's end (worker process) → waiter resolved (this process), on the monotonic clock")
    console.log(`floor: the harness's raw-pg floor; ${rounds} rounds (LATENCY_ROUNDS), sides taking turns to go first`)
    for (const [title, side, targets] of [
      [`(a) idle, one job at a time, handlers of 5–105 ms, ${idleSamples} samples a round`, idle, [1.2, 2]],
      [`(b) load, ${loadJobs} jobs in flight, ${loadConcurrency} workers`, load, [1.4, 2.5]]
    ] as const) {
      console.log(title)
      const r50: Array<number> = []
      const r99: Array<number> = []
      for (let k = 0; k < rounds; k++) {
        const [floor, ours] = k % 2 === 0
          ? yield* Effect.all([side.floor, side.jobwatch])
          : yield* Effect.map(Effect.all([side.jobwatch, side.floor]), ([b, a]) => [a, b] as const)
        r50.push(ours.p50 / Math.max(floor.p50, 0.1))
        r99.push(ours.p99 / Math.max(floor.p99, 0.1))
        console.log(`  round ${k + 1}`)
        console.log(`    floor     ${figures(floor)}`)
        console.log(`    jobwatch  ${figures(ours)}   ratio p50 ${r50[k]!.toFixed(2)}×  p99 ${r99[k]!.toFixed(2)}×`)
      }
      const met = (value: number, target: number) => `${value.toFixed(2)}× (target ≤ ${target}×: ${value <= target ? "met" : "NOT met"})`
      console.log(`  median of ${rounds} rounds: p50 ${met(median(r50), targets[0])}  p99 ${met(median(r99), targets[1])}`)
    }
  }).pipe(Effect.scoped)
