import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Clock, Effect, Exit, Layer, Scope, TestClock } from "effect"
import type { JobWatchConfigInput } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import { clientConfig } from "../src/Listener.js"
import * as Reaper from "../src/Reaper.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { eventsOf, eventually, testLayer } from "./support/workers.js"

/** Runs `effect` on services of a schema of its own, its test clock at the wall clock's time. */
const onFreshSchema = (config: JobWatchConfigInput = {}) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(testLayer(config)), Effect.scoped)

describe("the reaper", () => {
  it.effect("a worker that stops heartbeating has its job back in pending within 2 × its heartbeat interval", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const reaper = yield* Reaper.Reaper
      const queue = uniqueQueue("dead")
      const ref = yield* jobs.enqueue({ name: "orphan", queue, maxAttempts: 2 })
      yield* eventually(reaper.state, (s) => s.leader)
      yield* workers.claim("w-dies", { queues: [queue], heartbeatInterval: "10 seconds" })
      yield* TestClock.adjust("5 seconds")
      yield* workers.heartbeat("w-dies")
      const lastHeartbeat = yield* Clock.currentTimeMillis
      // the worker dies: no heartbeat any more. Time moves a reaper interval at a time.
      let backAt: number | undefined
      for (let step = 0; step < 25 && backAt === undefined; step++) {
        const passes = (yield* reaper.state).passes
        yield* TestClock.adjust("1 second")
        yield* eventually(reaper.state, (s) => s.passes > passes)
        if ((yield* jobs.get(ref.id)).status === "pending") backAt = yield* Clock.currentTimeMillis
      }
      assert.isDefined(backAt, "the job came back")
      const after = backAt! - lastHeartbeat
      assert.isTrue(after > 15_000, `not before the lease (1.5 × 10 s) expired: ${after} ms`)
      assert.isTrue(after <= 20_000, `within 2 × 10 s of the last heartbeat: ${after} ms`)
      const last = (yield* eventsOf(ref.id)).at(-1)!
      assert.strictEqual(last.status, "pending")
      assert.strictEqual(last.previousStatus, "claimed")
      assert.strictEqual(last.error?.code, "worker_lost")
      assert.include(last.message, "w-dies")
      const info = yield* jobs.get(ref.id)
      assert.isNull(info.workerId)
      assert.strictEqual(info.attempt, 1)
    }).pipe(onFreshSchema({ reaper: true, reaperInterval: "1 second" })), { timeout: 60_000 })

  it.effect("on the last attempt the job fails with worker_lost; a cancel-requested one ends canceled", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const reaper = yield* Reaper.Reaper
      const queue = uniqueQueue("last")
      const last = yield* jobs.enqueue({ name: "last", queue, maxAttempts: 1 })
      const canceling = yield* jobs.enqueue({ name: "canceling", queue, maxAttempts: 3 })
      yield* workers.claim("w-gone", { queues: [queue], limit: 2, heartbeatInterval: "2 seconds" })
      yield* jobs.cancel(canceling.id)
      yield* TestClock.adjust("2999 millis")
      yield* reaper.runOnce
      assert.strictEqual((yield* jobs.get(last.id)).status, "claimed", "the lease (3 s) has not expired")
      yield* TestClock.adjust("2 millis")
      yield* reaper.runOnce
      const failed = yield* jobs.get(last.id)
      assert.strictEqual(failed.status, "failed")
      assert.strictEqual(failed.error?.code, "worker_lost")
      assert.isNotNull(failed.finishedAt)
      assert.strictEqual((yield* jobs.get(canceling.id)).status, "canceled")
      const state = yield* reaper.state
      assert.strictEqual(state.leasesExpired, 2)
    }).pipe(onFreshSchema()))

  it.effect("a job past its timeout fails with code timeout (or is retried while attempts remain)", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const reaper = yield* Reaper.Reaper
      const queue = uniqueQueue("slow")
      const once = yield* jobs.enqueue({ name: "once", queue, timeout: "5 seconds", priority: 1 })
      const twice = yield* jobs.enqueue({ name: "twice", queue, timeout: "5 seconds", maxAttempts: 2, backoff: { delay: 0 } })
      yield* workers.claim("w-slow", { queues: [queue], limit: 2, heartbeatInterval: "1 minute" })
      yield* TestClock.adjust("5 seconds")
      yield* reaper.runOnce
      assert.strictEqual((yield* jobs.get(once.id)).status, "claimed")
      yield* TestClock.adjust("1 millis")
      yield* reaper.runOnce
      const timedOut = yield* jobs.get(once.id)
      assert.strictEqual(timedOut.status, "failed")
      assert.strictEqual(timedOut.error?.code, "timeout")
      assert.include(timedOut.error?.message, "timeout of 5 s")
      const retried = yield* jobs.get(twice.id)
      assert.strictEqual(retried.status, "pending", "retried at once: its backoff is 0")
      assert.strictEqual(retried.error?.code, "timeout")
      // the worker that held them may no longer end them
      const late = yield* Effect.flip(workers.complete(once.id, { workerId: "w-slow", result: 1 }))
      assert.strictEqual(late._tag, "InvalidTransition")
    }).pipe(onFreshSchema()))

  it.effect("due scheduled jobs are promoted; silent workers are forgotten", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const reaper = yield* Reaper.Reaper
      const queue = uniqueQueue("due")
      yield* workers.claim("w-silent", { queues: [queue] })
      const now = yield* Clock.currentTimeMillis
      const later = yield* jobs.enqueue({ name: "later", queue, runAt: new Date(now + 60_000) })
      assert.strictEqual(later.status, "scheduled")
      yield* TestClock.adjust("31 seconds")
      yield* reaper.runOnce
      assert.strictEqual((yield* jobs.get(later.id)).status, "scheduled")
      assert.strictEqual((yield* Effect.flip(workers.heartbeat("w-silent")))._tag, "WorkerNotFound")
      yield* TestClock.adjust("30 seconds")
      yield* reaper.runOnce
      assert.strictEqual((yield* jobs.get(later.id)).status, "pending")
      const state = yield* reaper.state
      assert.strictEqual(state.promoted, 1)
      assert.strictEqual(state.workersForgotten, 1)
    }).pipe(onFreshSchema()))

  it.effect("release at shutdown puts held jobs back without using up their attempt", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const queue = uniqueQueue("release")
      const ref = yield* jobs.enqueue({ name: "r", queue })
      yield* workers.claim("w-rel", { queues: [queue] })
      const released = yield* workers.release("w-rel")
      assert.deepStrictEqual(released.map((r) => [r.id, r.status]), [[ref.id, "pending"]])
      const info = yield* jobs.get(ref.id)
      assert.strictEqual(info.attempt, 0)
      assert.isNull(info.workerId)
      const [again] = yield* workers.claim("w-other", { queues: [queue] })
      assert.strictEqual(again?.attempt, 1)
    }).pipe(onFreshSchema()))

  it.live("one reaper per cluster: a second stays idle while the first holds the lock, and takes over when it dies", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient
      const start = (name: string) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const reaper = yield* Reaper.make(clientConfig(pg.config, name), { campaign: true }).pipe(Scope.extend(scope))
          return { reaper, scope }
        })
      const first = yield* start("jw-reaper-1")
      yield* eventually(first.reaper.state, (s) => s.leader)
      const second = yield* start("jw-reaper-2")
      // the second asks every interval (100 ms) and is refused
      yield* Effect.sleep("1 second")
      assert.isFalse((yield* second.reaper.state).leader)
      assert.strictEqual((yield* second.reaper.state).passes, 0)
      assert.isTrue((yield* first.reaper.state).passes > 1)

      // the first one's connection dies (as when its process is killed): the second takes over
      yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jw-reaper-1'`
      yield* Scope.close(first.scope, Exit.void)
      yield* eventually(second.reaper.state, (s) => s.leader)
      const passes = (yield* second.reaper.state).passes
      yield* eventually(second.reaper.state, (s) => s.passes > passes)
      yield* Scope.close(second.scope, Exit.void)
    }).pipe(
      Effect.provide(testLayer({ reaper: false, reaperInterval: "100 millis" }).pipe(Layer.provide(Layer.setClock(Clock.make())))),
      Effect.scoped
    ), { timeout: 60_000 })
})
