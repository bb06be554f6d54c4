import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Chunk, Clock, Context, Effect, Exit, Fiber, Layer, Redacted, Scope, TestClock } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { Jobs } from "../src/Jobs.js"
import { Repos } from "./support/repos.js"
import { ProgressReporter } from "../src/Workers/ProgressReporter.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { runScript } from "./support/processes.js"
import * as Proxy from "./support/proxy.js"
import * as TestDb from "./support/TestDb.js"
import { eventsOf, eventually, testLayer } from "./support/workers.js"

/** A job claimed by `workerId`, in a queue of its own. */
const claimedJob = (workerId = "w-progress") =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const queue = uniqueQueue("p")
    const ref = yield* jobs.enqueue({ name: "reporting", queue })
    yield* workers.claim(workerId, { queues: [queue] })
    return ref.id
  })

const progressEvents = (id: JobId) =>
  Effect.map(eventsOf(id), (events) => events.filter((e) => e.type === "job.progress"))

/** A `ProgressReporter` of its own pool, as another process would have, on this test's schema. */
const otherProcessReporter = Effect.gen(function*() {
  const { schema } = yield* JobWatchConfig
  const scope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(
    ProgressReporter.Default.pipe(Layer.provide(Layer.merge(TestDb.pgLayer(4), JobWatchConfig.layer({ schema })))),
    scope
  )
  return { reporter: Context.get(context, ProgressReporter), scope }
})

describe("ProgressReporter", () => {
  layer(testLayer())((it) => {
    it.effect("1,000 reports within 2 s make at most 2 writes, and the last one lands", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const id = yield* claimedJob()
        let persisted = 0
        for (let i = 1; i <= 1000; i++) {
          const ack = yield* reporter.progress(id, { percent: i / 10, step: `step ${i}` })
          if (ack.persisted) persisted++
          if (i % 100 === 0) yield* TestClock.adjust("190 millis")
        }
        assert.strictEqual(persisted, 1, "only the first was written at once")
        assert.lengthOf(yield* progressEvents(id), 1)
        yield* TestClock.adjust("100 millis")
        const events = yield* eventually(progressEvents(id), (events) => events.length === 2)
        assert.deepStrictEqual(events.map((e) => e.progress), [0.1, 100])
        const info = yield* (yield* Jobs).get(id)
        assert.strictEqual(info.progress.percent, 100)
        assert.strictEqual(info.progress.step, "step 1000")
        // and nothing more is written in the windows after
        yield* TestClock.adjust("10 seconds")
        assert.lengthOf(yield* progressEvents(id), 2)
        assert.strictEqual(yield* reporter.pendingCount, 0)
      }))

    it.effect("a decrease fails with ProgressRegression (saying both numbers) and writes nothing", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const id = yield* claimedJob()
        yield* reporter.progress(id, { percent: 60 })
        // within the window: known here
        const early = yield* Effect.flip(reporter.progress(id, { percent: 40 }))
        assert.strictEqual(early._tag, "ProgressRegression")
        if (early._tag === "ProgressRegression") {
          assert.strictEqual(early.current, 60)
          assert.strictEqual(early.requested, 40)
          assert.include(early.message, "60")
          assert.include(early.message, "40")
        }
        // long after (the throttle forgot the job): the database refuses it
        yield* TestClock.adjust("10 seconds")
        const late = yield* Effect.flip(reporter.progress(id, { percent: 59.5, force: true }))
        assert.strictEqual(late._tag, "ProgressRegression")
        const events = yield* progressEvents(id)
        assert.deepStrictEqual(events.map((e) => e.progress), [60])
        // an equal percent may change the step and message
        const same = yield* reporter.progress(id, { percent: 60, step: "upload", message: "uploading", force: true })
        assert.isTrue(same.persisted)
        const info = yield* (yield* Jobs).get(id)
        assert.strictEqual(info.progress.step, "upload")
        assert.strictEqual(info.progress.message, "uploading")
      }))

    it.effect("two reporters in two processes never move progress backwards", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const { schema } = yield* JobWatchConfig
        const id = yield* claimedJob("w-two")
        // the other process reports 0.5, 1.5, …, 99.5 while this one reports 0, 1, …, 99, both 10 ms apart
        const child = yield* Effect.fork(runScript("progressChild.ts", [TestDb.databaseUrl(), schema, id, "w-two"]))
        yield* eventually(progressEvents(id), (events) => events.length > 0, 30)
        let refusedHere = 0
        for (let i = 0; i < 100; i++) {
          yield* reporter.progress(id, { percent: i, force: true }, { workerId: "w-two" }).pipe(
            Effect.catchTag("ProgressRegression", () => Effect.sync(() => refusedHere++))
          )
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        }
        const { code, stdout, stderr } = yield* Fiber.join(child)
        assert.strictEqual(code, 0, stderr)
        const percents = (yield* progressEvents(id)).map((e) => e.progress)
        for (let i = 1; i < percents.length; i++) {
          assert.isTrue(percents[i]! >= percents[i - 1]!, `event ${i}: ${percents[i - 1]} then ${percents[i]}`)
        }
        assert.strictEqual((yield* (yield* Jobs).get(id)).progress.percent, 99.5)
        // both wrote, and each refused what the other had passed
        assert.strictEqual(percents.length + refusedHere + Number(stdout.trim()), 200)
      }), { timeout: 60_000 })

    it.effect("force writes at once; percent is clamped; NaN, Infinity, subnormals and non-numbers are InvalidProgress", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const id = yield* claimedJob()
        assert.isTrue((yield* reporter.progress(id, { percent: -5 })).persisted)
        assert.strictEqual((yield* (yield* Jobs).get(id)).progress.percent, 0)
        assert.isFalse((yield* reporter.progress(id, { percent: 10 })).persisted)
        const forced = yield* reporter.progress(id, { percent: 20, force: true })
        assert.isTrue(forced.persisted)
        assert.strictEqual(forced.percent, 20)
        assert.deepStrictEqual((yield* progressEvents(id)).map((e) => e.progress), [0, 20])
        const clamped = yield* reporter.progress(id, { percent: 150, force: true })
        assert.strictEqual(clamped.percent, 100)
        // a subnormal number is finite, but PostgreSQL's double precision cannot store it (underflow)
        for (const percent of [Number.NaN, Number.POSITIVE_INFINITY, 5e-324, "50", null, undefined]) {
          const error = yield* Effect.flip(reporter.progress(id, { percent: percent as number }))
          assert.strictEqual(error._tag, "InvalidProgress")
          assert.isTrue(error.message.startsWith("percent"), error.message)
        }
        const badData = yield* Effect.flip(reporter.progress(id, { percent: 100, data: { big: "x".repeat(70_000) } }))
        assert.strictEqual(badData._tag, "PayloadTooLarge")
        const badStep = yield* Effect.flip(reporter.progress(id, { percent: 100, step: 42 as unknown as string }))
        assert.strictEqual(badStep._tag, "InvalidInput")
      }))

    it.effect("progress above 0 makes a claimed job running; progress on a job nobody holds is refused", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const jobs = yield* Jobs
        const id = yield* claimedJob()
        yield* reporter.progress(id, { percent: 0 })
        assert.strictEqual((yield* jobs.get(id)).status, "claimed")
        yield* reporter.progress(id, { percent: 1, force: true })
        const info = yield* jobs.get(id)
        assert.strictEqual(info.status, "running")
        assert.isNotNull(info.startedAt)
        const [event] = (yield* progressEvents(id)).slice(-1)
        assert.strictEqual(event?.previousStatus, "claimed")
        assert.strictEqual(event?.status, "running")
        const pending = yield* jobs.enqueue({ name: "not-held", queue: uniqueQueue() })
        const refused = yield* Effect.flip(reporter.progress(pending.id, { percent: 5 }))
        assert.strictEqual(refused._tag, "InvalidTransition")
        const missing = yield* Effect.flip(reporter.progress("0190a5e4-0000-7000-8000-000000000000" as JobId, { percent: 5 }))
        assert.strictEqual(missing._tag, "JobNotFound")
      }))

    it.effect("milestones on a 0 → 100 run in 7-point steps: the first, crossing 25/50/75/100, or ≥ 10 points", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const id = yield* claimedJob()
        const steps = [...Array.from({ length: 15 }, (_, i) => i * 7), 100]
        for (const percent of steps) yield* reporter.progress(id, { percent, force: true })
        const events = yield* progressEvents(id)
        assert.deepStrictEqual(events.map((e) => e.progress), steps)
        const marked = events.filter((e) => e.milestone).map((e) => e.progress)
        // 0 first; 14 (+14); 28 (crossed 25); 42 (+14); 56 (crossed 50); 70 (+14); 77 (crossed 75); 91 (+14);
        // 100 (crossed 100)
        assert.deepStrictEqual(marked, [0, 14, 28, 42, 56, 70, 77, 91, 100])
        // every event carries what outbound consumers expect
        const e = events[3]!
        assert.strictEqual(e.type, "job.progress")
        assert.strictEqual(e.jobId, id)
        assert.strictEqual(e.progress, 21)
        assert.strictEqual(e.previousProgress, 14)
        assert.strictEqual(e.attempt, 1)
        assert.isString(e.id)
        assert.isNumber(e.version)
        assert.isDefined(e.timestamp)
      }))

    it.effect("a terminal change writes the pending report first, in its own transaction", () =>
      Effect.gen(function*() {
        const reporter = yield* ProgressReporter
        const workers = yield* Workers
        const id = yield* claimedJob("w-flush")
        yield* reporter.progress(id, { percent: 10 })
        assert.isFalse((yield* reporter.progress(id, { percent: 40, step: "almost" })).persisted)
        const failed = yield* workers.fail(id, { workerId: "w-flush", code: "x", error: "gave up", retryable: false })
        assert.strictEqual(failed.status, "failed")
        assert.strictEqual(failed.progress.percent, 40)
        const tail = (yield* eventsOf(id)).slice(-2).map((e) => [e.type, e.status, e.progress])
        assert.deepStrictEqual(tail, [["job.progress", "running", 40], ["job.failed", "failed", 40]])
        assert.strictEqual(yield* reporter.pendingCount, 0)
      }))

    it.effect("closing the layer's scope writes every pending report", () =>
      Effect.gen(function*() {
        const other = yield* otherProcessReporter
        const ids = yield* Effect.all([claimedJob(), claimedJob()])
        for (const id of ids) {
          yield* other.reporter.progress(id, { percent: 5 })
          yield* other.reporter.progress(id, { percent: 55 })
        }
        assert.strictEqual(yield* other.reporter.pendingCount, 2)
        yield* Scope.close(other.scope, Exit.void)
        for (const id of ids) assert.strictEqual((yield* (yield* Repos).get(id)).progress.percent, 55)
      }))

    it.scoped("a coalesced report whose write fails with the database gone does not stop later reports", () =>
      Effect.gen(function*() {
        const { schema } = yield* JobWatchConfig
        const proxy = yield* Proxy.make
        // a reporter whose pool goes through the proxy
        const context = yield* Layer.build(
          ProgressReporter.Default.pipe(
            Layer.provide(PgClient.layer({ url: Redacted.make(proxy.url), maxConnections: 2 })),
            Layer.provide(JobWatchConfig.layer({ schema }))
          )
        )
        const reporter = Context.get(context, ProgressReporter)
        const id = yield* claimedJob()
        assert.isTrue((yield* reporter.progress(id, { percent: 10 })).persisted)
        assert.isFalse((yield* reporter.progress(id, { percent: 20 })).persisted)
        yield* proxy.cut()
        // the window ends: the pending report's write fails (the database is gone)
        yield* TestClock.adjust("2 seconds")
        const failedAt = yield* Clock.currentTimeMillis
        // the job's timer lives on: it waits out the next window
        yield* eventually(TestClock.sleeps(), (sleeps) => Chunk.some(sleeps, (at) => at === failedAt + 2000))
        yield* proxy.restore()
        yield* TestClock.adjust("2 seconds")
        // back: a report lands again (at once, or by the timer if it has not yet ended its window)
        yield* reporter.progress(id, { percent: 30 })
        yield* eventually(Effect.flatMap(Repos, (repo) => repo.get(id)), (info) => info.progress.percent === 30, 10)
      }))
  })
})
