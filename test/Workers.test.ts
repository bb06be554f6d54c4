import { assert, describe, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Clock, Deferred, Duration, Effect, Either, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import { awaitConnected, Listener } from "../src/EventLog/Listener.js"
import * as Reaper from "../src/Workers/Reaper.js"
import * as Helpers from "../src/Workers/WorkerHelpers.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { eventsOf, eventually, testLayer } from "./support/workers.js"

describe("Workers", () => {
  layer(testLayer())((it) => {
    it.effect("claim takes priority first, then FIFO, leases from the caller's clock and registers the worker", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue()
        const low1 = yield* jobs.enqueue({ name: "low1", queue })
        const high = yield* jobs.enqueue({ name: "high", queue, priority: 5 })
        const low2 = yield* jobs.enqueue({ name: "low2", queue })
        const now = yield* Clock.currentTimeMillis
        const claimed = yield* workers.claim("w-order", { queues: [queue], limit: 10, heartbeatInterval: "4 seconds" })
        assert.deepStrictEqual(claimed.map((j) => j.id), [high.id, low1.id, low2.id])
        for (const job of claimed) {
          assert.strictEqual(job.attempt, 1)
          // lease = 1.5 × the heartbeat interval, from the caller's clock
          assert.strictEqual(job.leaseExpiresAt.epochMillis, now + 6000)
        }
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const rows = yield* sql.unsafe<{ queues: Array<string>; heartbeat_interval_ms: string }>(
          `SELECT queues, heartbeat_interval_ms FROM "${schema}".workers WHERE id = 'w-order'`
        )
        assert.deepStrictEqual(rows[0]?.queues, [queue])
        assert.strictEqual(Number(rows[0]?.heartbeat_interval_ms), 4000)
        assert.lengthOf(yield* workers.claim("w-order", { queues: [queue] }), 0)
      }))

    it.effect("a claim that finds nothing writes nothing while the registration is fresh; a change or a second rewrites it", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("idle")
        const registration = sql.unsafe<{ xmin: string; seen: Date; heartbeat: string }>(
          `SELECT xmin::text AS xmin, last_seen_at AS seen, heartbeat_interval_ms AS heartbeat
           FROM "${schema}".workers WHERE id = 'w-idle'`
        ).pipe(Effect.map((rows) => rows[0]!))
        assert.lengthOf(yield* workers.claim("w-idle", { queues: [queue] }), 0)
        const first = yield* registration
        yield* TestClock.adjust("500 millis")
        assert.lengthOf(yield* workers.claim("w-idle", { queues: [queue] }), 0)
        // the same row version: the claim wrote nothing (no transaction id, nothing to flush at its commit)
        assert.strictEqual((yield* registration).xmin, first.xmin)
        yield* workers.claim("w-idle", { queues: [queue], heartbeatInterval: "3 seconds" })
        const changed = yield* registration
        assert.notStrictEqual(changed.xmin, first.xmin)
        assert.strictEqual(Number(changed.heartbeat), 3000)
        yield* TestClock.adjust("2 seconds")
        yield* workers.claim("w-idle", { queues: [queue], heartbeatInterval: "3 seconds" })
        assert.strictEqual((yield* registration).seen.getTime() - changed.seen.getTime(), 2000)
      }))

    it.effect("8 workers claiming 2,000 jobs concurrently claim each exactly once", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("many")
        const ids: Array<string> = []
        for (let i = 0; i < 2; i++) {
          const refs = yield* jobs.enqueueBatch(Array.from({ length: 1000 }, (_, k) => ({ name: `n${i * 1000 + k}`, queue })))
          ids.push(...refs.map((r) => r.id))
        }
        const claimAll = (worker: string) =>
          Effect.gen(function*() {
            const mine: Array<string> = []
            for (let round = 0; round < 1000; round++) {
              const batch = yield* workers.claim(worker, { queues: [queue], limit: 13 })
              if (batch.length === 0) return mine
              mine.push(...batch.map((j) => j.id))
            }
            return mine
          })
        const perWorker = yield* Effect.all(Array.from({ length: 8 }, (_, i) => claimAll(`w${i}`)), { concurrency: 8 })
        const all = perWorker.flat()
        assert.strictEqual(all.length, 2000)
        assert.strictEqual(new Set(all).size, 2000)
        assert.deepStrictEqual([...all].sort(), [...ids].sort())
        assert.isTrue(perWorker.filter((mine) => mine.length > 0).length > 1, "the work was shared")
      }))

    it.effect("a waiting claim is woken by the enqueue (the test clock never moves: no timer can wake it)", () =>
      Effect.gen(function*() {
        yield* awaitConnected(yield* Listener)
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("wait")
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const waiting = yield* Effect.fork(workers.claim("w-wait", { queues: [queue], wait: "30 seconds" }))
        // the claim found nothing and waits; the job arrives later: once the claim's statement (which registers its
        // worker) has committed, with nothing to take, and not after a guessed pause
        const registered = sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".workers WHERE id = 'w-wait'`)
        yield* eventually(registered, (rows) => rows[0]?.n === 1)
        const ref = yield* jobs.enqueue({ name: "wake", queue })
        const claimed = yield* Fiber.join(waiting).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("not woken") }),
          Effect.provide(Layer.setClock(Clock.make()))
        )
        assert.deepStrictEqual(claimed.map((j) => j.id), [ref.id])
      }))

    it.effect("a waiting claim answers empty when its wait ends, and a job of another queue does not take it", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("quiet")
        const start = yield* Clock.currentTimeMillis
        const waiting = yield* Effect.fork(workers.claim("w-quiet", { queues: [queue], wait: "10 seconds" }))
        yield* jobs.enqueue({ name: "elsewhere", queue: uniqueQueue("other") })
        // the clock moves a second at a time until the claim answers: one 10 s step taken before the claim had
        // gone to sleep on the clock (a loaded machine) would leave it waiting past the test's end
        for (let i = 0; i < 60 && Option.isNone(yield* Fiber.poll(waiting)); i++) {
          yield* TestClock.adjust("1 second")
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
        }
        assert.lengthOf(yield* Fiber.join(waiting), 0)
        assert.isAtLeast((yield* Clock.currentTimeMillis) - start, 10_000, "not before its wait ended")
      }))

    it.effect("bad claim input is InvalidInput naming the field", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const cases: Array<[Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>, string]> = [
          [workers.claim("", {}), "workerId"],
          [workers.claim("w", { queues: [] }), "queues"],
          [workers.claim("w", { queues: [""] }), "queues[0]"],
          [workers.claim("w", { limit: 0 }), "limit"],
          [workers.claim("w", { limit: 1001 }), "limit"],
          [workers.claim("w", { wait: "forever" as Duration.DurationInput }), "wait"],
          [workers.claim("w", { wait: "1 hour" }), "wait"]
        ]
        for (const [effect, field] of cases) {
          const error = yield* Effect.flip(effect)
          assert.strictEqual(error._tag, "InvalidInput")
          assert.isTrue(error.message.startsWith(field), error.message)
        }
      }))

    it.effect("heartbeat extends the leases of the worker's jobs and names those with a cancel request", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("hb")
        const a = yield* jobs.enqueue({ name: "a", queue })
        const b = yield* jobs.enqueue({ name: "b", queue })
        yield* workers.claim("w-hb", { queues: [queue], limit: 2, heartbeatInterval: "10 seconds" })
        yield* jobs.cancel(b.id)
        yield* TestClock.adjust("9 seconds")
        const result = yield* workers.heartbeat("w-hb")
        assert.deepStrictEqual(result.cancelRequested, [b.id])
        const now = yield* Clock.currentTimeMillis
        const info = yield* jobs.get(a.id)
        assert.strictEqual(info.leaseExpiresAt?.epochMillis, now + 15_000)
        const unknown = yield* Effect.flip(workers.heartbeat("nobody-here"))
        assert.strictEqual(unknown._tag, "WorkerNotFound")
      }))

    it.effect("only the holder may start, complete, fail or cancel a job; completing twice is InvalidTransition", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("holder")
        const ref = yield* jobs.enqueue({ name: "held", queue })
        yield* workers.claim("w-a", { queues: [queue] })
        for (
          const attempt of <Array<Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>>>[
            workers.start(ref.id, { workerId: "w-b" }),
            workers.complete(ref.id, { workerId: "w-b", result: 1 }),
            workers.fail(ref.id, { workerId: "w-b", error: "no" }),
            workers.canceled(ref.id, { workerId: "w-b" }),
            workers.progress(ref.id, { percent: 10 }, { workerId: "w-b" })
          ]
        ) {
          const error = yield* Effect.flip(attempt)
          assert.strictEqual(error._tag, "NotJobHolder")
          // the holder is not named: a worker learns nothing of other workers
          assert.notProperty(error, "holder")
          assert.notInclude(error.message, "w-a")
        }
        const started = yield* workers.start(ref.id, { workerId: "w-a", message: "go" })
        assert.strictEqual(started.status, "running")
        const done = yield* workers.complete(ref.id, { workerId: "w-a", result: { ok: 1 } })
        assert.strictEqual(done.status, "completed")
        assert.deepStrictEqual(done.result, { ok: 1 })
        const again = yield* Effect.flip(workers.complete(ref.id, { workerId: "w-a", result: 2 }))
        assert.strictEqual(again._tag, "InvalidTransition")
        if (again._tag === "InvalidTransition") assert.strictEqual(again.from, "completed")
        const bad = yield* Effect.flip(workers.complete("not-a-uuid", { workerId: "w-a" }))
        assert.strictEqual(bad._tag, "InvalidInput")
      }))

    it.effect("completeMany completes a worker's jobs in one statement and says per item why one was not", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("many-done")
        const [a, b, done, foreign] = yield* jobs.enqueueBatch(["a", "b", "done", "foreign"].map((name) => ({ name, queue })))
        yield* workers.claim("w-many", { queues: [queue], limit: 3 })
        yield* workers.progress(a!.id, { percent: 40, force: true }, { workerId: "w-many" })
        yield* workers.complete(done!.id, { workerId: "w-many" })
        yield* workers.claim("w-other", { queues: [queue] })
        const missing = "01900000-0000-7000-8000-000000000000"
        const answers = yield* workers.completeMany("w-many", [
          { id: a!.id, result: { n: 1 }, message: "first" },
          { id: foreign!.id, result: 2 },
          { id: b!.id },
          { id: done!.id, result: 3 },
          { id: missing }
        ])
        assert.deepStrictEqual(answers.map((x) => Either.isRight(x) ? "ok" : x.left._tag), [
          "ok",
          "NotJobHolder",
          "ok",
          "InvalidTransition",
          "JobNotFound"
        ])
        const infoA = yield* jobs.get(a!.id)
        assert.strictEqual(infoA.status, "completed")
        assert.deepStrictEqual(infoA.result, { n: 1 })
        assert.strictEqual((yield* jobs.get(b!.id)).result, null)
        assert.strictEqual((yield* jobs.get(foreign!.id)).status, "claimed")
        // the event says where progress was before the completion, and carries the message
        const last = (yield* eventsOf(a!.id)).at(-1)!
        assert.strictEqual(last.status, "completed")
        assert.strictEqual(last.previousStatus, "running")
        assert.strictEqual(last.previousProgress, 40)
        assert.strictEqual(last.progress, 100)
        assert.strictEqual(last.message, "first")
        // one statement: the two jobs share their transaction's time
        const times = yield* sql.unsafe<{ n: string }>(
          `SELECT count(DISTINCT finished_at)::text AS n FROM "${schema}".jobs WHERE id IN ($1, $2)`,
          [a!.id, b!.id]
        )
        assert.strictEqual(times[0]!.n, "1")
        // bad input changes nothing
        const c = yield* jobs.enqueue({ name: "c", queue })
        yield* workers.claim("w-many", { queues: [queue] })
        for (
          const [items, field] of [
            [[], "items"],
            [[{ id: c.id }, { id: c.id }], "items[1].id"],
            [[{ id: c.id }, { id: "nope" }], "items[1].id"],
            [[{ id: c.id, message: 5 }], "items[0].message"],
            [Array.from({ length: 1001 }, () => ({ id: c.id })), "items"]
          ] as const
        ) {
          const error = yield* Effect.flip(workers.completeMany("w-many", items as never))
          assert.strictEqual(error._tag, "InvalidInput")
          if (error._tag === "InvalidInput") assert.strictEqual(error.field, field)
        }
        assert.strictEqual((yield* jobs.get(c.id)).status, "claimed")
      }))

    it.effect("a failed attempt is retried after a jittered exponential backoff; the last one fails for good", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("retry")
        const ref = yield* jobs.enqueue({
          name: "flaky",
          queue,
          maxAttempts: 3,
          backoff: { delay: "2 seconds", multiplier: 3, maxDelay: "1 minute" }
        })
        const reaper = yield* Reaper.Reaper
        const expected = [2000, 6000]
        for (let attempt = 1; attempt <= 3; attempt++) {
          const [job] = yield* workers.claim("w-retry", { queues: [queue] })
          assert.strictEqual(job?.attempt, attempt)
          const now = yield* Clock.currentTimeMillis
          const info = yield* workers.fail(ref.id, { workerId: "w-retry", code: "flaky", error: `attempt ${attempt} broke` })
          if (attempt === 3) {
            assert.strictEqual(info.status, "failed")
            assert.strictEqual(info.error?.code, "flaky")
            break
          }
          assert.strictEqual(info.status, "scheduled")
          const delay = (info.scheduledAt?.epochMillis ?? Number.NaN) - now
          const full = expected[attempt - 1]!
          assert.isTrue(delay >= full / 2 && delay <= full, `attempt ${attempt}: ${delay} ms within [${full / 2}, ${full}]`)
          // not due yet: the reaper leaves it; once due, it becomes pending
          yield* TestClock.adjust(Duration.millis(delay - 1))
          yield* reaper.runOnce
          assert.strictEqual((yield* jobs.get(ref.id)).status, "scheduled")
          yield* TestClock.adjust(Duration.millis(1))
          yield* reaper.runOnce
          assert.strictEqual((yield* jobs.get(ref.id)).status, "pending")
        }
        const events = yield* eventsOf(ref.id)
        // the transitions: job.status.changed, and the terminal one as its own type (job.failed)
        const changes = events.filter((e) => e.type !== "job.progress").map((e) => [e.status, e.attempt])
        assert.deepStrictEqual(changes, [
          ["pending", 0],
          ["claimed", 1],
          ["scheduled", 1],
          ["pending", 1],
          ["claimed", 2],
          ["scheduled", 2],
          ["pending", 2],
          ["claimed", 3],
          ["failed", 3]
        ])
        const failures = events.filter((e) => e.error !== null).map((e) => e.error?.message)
        assert.deepStrictEqual(failures, ["attempt 1 broke", "attempt 2 broke", "attempt 3 broke"])
      }))

    it.effect("fail with retryable: false ends the job at once whatever attempts remain", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("fatal")
        const ref = yield* jobs.enqueue({ name: "fatal", queue, maxAttempts: 5 })
        yield* workers.claim("w-fatal", { queues: [queue] })
        const info = yield* workers.fail(ref.id, { workerId: "w-fatal", code: "bad_input", error: "no", retryable: false })
        assert.strictEqual(info.status, "failed")
        assert.strictEqual(info.attempt, 1)
      }))

    it.effect("the seed systems' helpers: startJob, progress, completeJob, failJob", () =>
      Effect.gen(function*() {
        const workers = yield* Workers
        const jobs = yield* Jobs
        const queue = uniqueQueue("helpers")
        const a = yield* jobs.enqueue({ name: "a", queue })
        const b = yield* jobs.enqueue({ name: "b", queue })
        yield* workers.claim("w-helpers", { queues: [queue], limit: 2 })
        assert.strictEqual((yield* Helpers.startJob(a.id, "starting")).status, "running")
        const ack = yield* Helpers.progress(a.id, 30, "resize", "resizing", { frames: 3 })
        assert.deepStrictEqual([ack.persisted, ack.percent], [true, 30])
        const done = yield* Helpers.completeJob(a.id, { url: "x" }, "done")
        assert.deepStrictEqual([done.status, done.result, done.progress.percent], ["completed", { url: "x" }, 100])
        const failed = yield* Helpers.failJob(b.id, "oom", "out of memory", { progress: 45 })
        assert.deepStrictEqual([failed.status, failed.error?.code, failed.progress.percent], ["failed", "oom", 45])
        const events = yield* eventsOf(a.id)
        assert.deepStrictEqual(events.map((e) => [e.type, e.message]).slice(1), [
          ["job.status.changed", null],
          ["job.status.changed", "starting"],
          ["job.progress", "resizing"],
          ["job.completed", "done"]
        ])
      }))
  })
})

describe("Workers: a claim and its caller", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("a claim interrupted while its statement runs gives its jobs back: none is left held for the reaper", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("gone")
        // registers the worker (there is nothing to claim yet)
        yield* workers.claim("w-gone", { queues: [queue] })
        const job = yield* jobs.enqueue({ name: "gone", queue })
        // another transaction holds the worker's row: the claim's statement waits for it
        const locked = yield* Deferred.make<void>()
        const unlock = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`SELECT 1 FROM "${schema}".workers WHERE id = 'w-gone' FOR UPDATE`)
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(unlock)
        })))
        yield* Deferred.await(locked)
        // (with another heartbeat interval: a claim rewrites the registration only when it changed or is old)
        const claiming = yield* Effect.fork(workers.claim("w-gone", { queues: [queue], heartbeatInterval: "7 seconds" }))
        yield* eventually(
          sql.unsafe<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`,
            [`"${schema}"."job_claim"`]
          ),
          (rows) => rows[0]!.n > 0
        )
        // its caller goes away (a client that disconnects, a worker that shuts down), then the lock goes
        yield* Fiber.interruptFork(claiming)
        yield* Effect.yieldNow()
        yield* Deferred.succeed(unlock, undefined)
        yield* Fiber.join(holder)
        assert.isTrue(Exit.isInterrupted(yield* Fiber.await(claiming)))
        const info = yield* jobs.get(job.id)
        assert.deepStrictEqual([info.status, info.attempt, info.workerId], ["pending", 0, null])
        // and the next claim takes it
        assert.deepStrictEqual((yield* workers.claim("w-next", { queues: [queue] })).map((j) => j.id), [job.id])
      }))
  })
})
