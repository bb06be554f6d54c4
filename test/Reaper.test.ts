import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Chunk, Clock, Duration, Effect, Exit, Layer, Option, Redacted, Scope, TestClock } from "effect"
import type { JobWatchConfigInput } from "../src/Config.js"
import { JobWatchConfig } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import * as JobWatch from "../src/JobWatch.js"
import { clientConfig } from "../src/EventLog/Listener.js"
import * as Reaper from "../src/Workers/Reaper.js"
import { Workers } from "../src/Workers.js"
import { allRepos } from "./support/repos.js"
import { toNextWakeUp } from "./support/clock.js"
import { closedPort, uniqueQueue } from "./support/fixtures.js"
import { capturingLogs, linesMatching } from "./support/logs.js"
import * as Proxy from "./support/proxy.js"
import * as TestDb from "./support/TestDb.js"
import { eventsOf, eventually, testLayer } from "./support/workers.js"

/** Runs `effect` on services of a schema of its own, its test clock at the wall clock's time. */
const onFreshSchema = (config: JobWatchConfigInput = {}) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(testLayer(config)), Effect.scoped)

/**
 * Runs the reaper's next pass on the test clock: waits until the reaper sleeps (its sleep registered with the
 * clock, not only planned: moving the clock before the sleep registers would push its wake-up past any time the
 * test moves to), moves the clock to that wake-up, and waits until the pass is done and it planned the next one.
 * Answers the time of the pass.
 */
const nextPass = (reaper: Reaper.Reaper) =>
  Effect.gen(function*() {
    const asleep = Effect.gen(function*() {
      const state = yield* reaper.state
      if (!state.leader || Option.isNone(state.nextPassAt)) return Option.none<number>()
      const planned = state.nextPassAt.value.getTime()
      // (a Date holds whole milliseconds; a backoff's sleep may end at a fraction of one)
      return Chunk.findFirst(yield* TestClock.sleeps(), (wake) => Math.abs(wake - planned) < 1)
    })
    const at = Option.getOrThrow(yield* eventually(asleep, Option.isSome))
    yield* TestClock.setTime(at)
    yield* eventually(reaper.state, (s) => Option.isSome(s.nextPassAt) && s.nextPassAt.value.getTime() > Math.floor(at))
    return at
  })

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
      // the worker dies: no heartbeat any more. Time moves from one reaper pass to the next (at most an interval
      // apart). Each pass is awaited on the reaper's own state, and the clock moves only once the reaper sleeps on
      // it: a clock moved while a slow pass still ran used to leave the reaper asleep past every later step
      let backAt: number | undefined
      for (let step = 0; step < 40 && backAt === undefined; step++) {
        const at = yield* nextPass(reaper)
        if ((yield* jobs.get(ref.id)).status === "pending") backAt = at
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

  /**
   * A worker takes a job with heartbeat interval `heartbeat` just before the reaper's next pass (the worst moment: it
   * just planned its sleep) and dies; time moves from one reaper pass to the next. Answers how long after the claim
   * the job was pending again, and checks another worker can claim it. With `registered`, the worker was known to
   * the reaper (it had claimed before) when it took the job.
   */
  const backAfterDeath = (heartbeat: Duration.DurationInput, registered: boolean) =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      const reaper = yield* Reaper.Reaper
      const queue = uniqueQueue("cadence")
      const worker = `w-${queue}`
      if (registered) {
        yield* workers.claim(worker, { queues: [queue], heartbeatInterval: heartbeat })
        yield* nextPass(reaper)
      }
      const ref = yield* jobs.enqueue({ name: "orphan", queue, maxAttempts: 3 })
      const { nextPassAt } = yield* eventually(reaper.state, (s) => s.leader && Option.isSome(s.nextPassAt))
      const justBefore = Option.getOrThrow(nextPassAt).getTime() - 1
      if (justBefore > (yield* Clock.currentTimeMillis)) yield* TestClock.setTime(justBefore)
      const [claimed] = yield* workers.claim(worker, { queues: [queue], heartbeatInterval: heartbeat })
      assert.strictEqual(claimed?.id, ref.id)
      const claimedAt = yield* Clock.currentTimeMillis
      // the worker dies: no heartbeat
      for (let pass = 0; pass < 50 && (yield* jobs.get(ref.id)).status !== "pending"; pass++) yield* nextPass(reaper)
      const after = (yield* Clock.currentTimeMillis) - claimedAt
      const [again] = yield* workers.claim(`${worker}-next`, { queues: [queue] })
      assert.strictEqual(again?.id, ref.id, "another worker claims it")
      return after
    })

  it.effect("a dead worker's job is claimable again within 2 × its heartbeat interval (500 ms to 3 s)", () =>
    Effect.gen(function*() {
      for (const ms of [500, 700, 1000, 1400, 3000]) {
        const after = yield* backAfterDeath(Duration.millis(ms), false)
        assert.isAbove(after, 1.5 * ms, `not before its lease (1.5 × ${ms} ms) expired`)
        assert.isAtMost(after, 2 * ms, `back ${after} ms after the claim, heartbeat ${ms} ms`)
      }
    }).pipe(onFreshSchema({ reaper: true, reaperInterval: "1 second" })), { timeout: 60_000 })

  it.effect("with a long reaper interval, a known worker's job is claimable again within 2 × its heartbeat", () =>
    Effect.gen(function*() {
      for (const ms of [500, 1000, 2000]) {
        const after = yield* backAfterDeath(Duration.millis(ms), true)
        assert.isAbove(after, 1.5 * ms, `not before its lease (1.5 × ${ms} ms) expired`)
        assert.isAtMost(after, 2 * ms, `back ${after} ms after the claim, heartbeat ${ms} ms`)
      }
    }).pipe(onFreshSchema({ reaper: true, reaperInterval: "10 seconds" })), { timeout: 60_000 })

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
      // the second asks every interval (100 ms) and is refused: once the database shows its lock connection idle
      // after asking (answered), it has been refused at least once, and nothing may have made it the leader
      const askedOnce = sql<{ n: number }>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = 'jw-reaper-2' AND state = 'idle' AND query LIKE '%pg_try_advisory_lock%'`.pipe(
        Effect.map((rows) => rows[0]?.n === 1)
      )
      yield* eventually(askedOnce, (asked) => asked)
      assert.isFalse((yield* second.reaper.state).leader)
      assert.strictEqual((yield* second.reaper.state).passes, 0)
      yield* eventually(first.reaper.state, (s) => s.passes > 1)

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

  /** The reaper's repository alone on a fresh schema (no other fiber sleeps on the test clock), through `url`. */
  const repoOn = (url: string, schema: string) =>
    allRepos.pipe(
      Layer.provide(JobWatch.MigrationsLive),
      Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })),
      Layer.provideMerge(JobWatchConfig.layer({ schema, reaper: false, retryMaxBackoff: "10 seconds" }))
    )

  it.scoped("a lock connection that cannot connect backs off and logs its first failure, then a line per cap", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const schema = TestDb.freshSchema()
        yield* Effect.addFinalizer(() => Proxy.dropSchema(schema))
        yield* Effect.gen(function*() {
          yield* Reaper.make({ host: "127.0.0.1", port, user: "x" }, { campaign: true })
          const start = yield* Clock.currentTimeMillis
          // every wake-up on the test clock is the reaper's next try
          for (let i = 0; i < 30; i++) yield* toNextWakeUp()
          const elapsed = (yield* Clock.currentTimeMillis) - start
          const lines = yield* linesMatching(logs, /lock connection/)
          assert.isAtMost(lines.length, 1 + Math.floor(elapsed / 10_000), lines.join("\n"))
          assert.match(lines[0]!, /^WARN the reaper's lock connection failed: cannot connect: .*ECONNREFUSED/)
          // backing off to the 10 s cap: 30 tries take minutes
          assert.isAtLeast(elapsed, 120_000)
        }).pipe(Effect.provide(repoOn(TestDb.databaseUrl(), schema)))
      })), { timeout: 60_000 })

  it.scoped("with the database gone, failing passes back off and log the first failure, a line per cap, recovery", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const proxy = yield* Proxy.make
        const schema = TestDb.freshSchema()
        yield* Effect.addFinalizer(() => Proxy.dropSchema(schema))
        yield* Effect.gen(function*() {
          // the lock connection goes straight to the database; the pool, through the proxy
          const reaper = yield* Reaper.make({ connectionString: TestDb.databaseUrl() }, { campaign: true })
          yield* eventually(reaper.state, (s) => s.leader && s.passes > 0)
          yield* proxy.cut()
          const start = yield* Clock.currentTimeMillis
          for (let i = 0; i < 30; i++) yield* toNextWakeUp()
          const elapsed = (yield* Clock.currentTimeMillis) - start
          const lines = yield* linesMatching(logs, /reaper('s)? pass/)
          assert.isAtMost(lines.length, 1 + Math.floor(elapsed / 10_000), lines.join("\n"))
          assert.match(lines[0]!, /^WARN the reaper's pass failed: .+; retrying with backoff$/)
          assert.isTrue(lines.every((line) => !line.includes("\n")), "no stack traces")
          assert.isAtLeast(elapsed, 120_000)
          // the database is back: the next pass succeeds and the recovery is logged once
          const passes = (yield* reaper.state).passes
          yield* proxy.restore()
          const passed = Effect.map(reaper.state, (s) => s.passes > passes)
          for (let i = 0; i < 20 && !(yield* passed); i++) yield* toNextWakeUp(passed)
          // (counted mid-pass; the recovery is logged when the pass ends)
          const recovered = yield* eventually(
            linesMatching(logs, /reaper's pass recovered/),
            (lines) => lines.length > 0
          )
          assert.strictEqual(recovered.length, 1)
          const count = Number(/recovered after (\d+) failures/.exec(recovered[0]!)?.[1])
          assert.isAtLeast(count, 25, recovered[0])
        }).pipe(Effect.provide(repoOn(proxy.url, schema)))
      })), { timeout: 60_000 })
})
