import { assert, describe, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Chunk, Clock, Context, Deferred, Duration, Effect, Either, Fiber, Layer, Option, Queue, Ref, Stream, TestClock, Tracer } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import type { JobWatchConfigInput } from "../src/Config.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobOutcome } from "../src/Domain/Job.js"
import type { JobId } from "../src/Domain/JobId.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { Repos } from "./support/repos.js"
import { awaitConnected, Listener } from "../src/EventLog/Listener.js"
import { Notifications } from "../src/Notifications.js"
import { jobIn, uniqueQueue } from "./support/fixtures.js"
import { runScript } from "./support/processes.js"
import * as TestDb from "./support/TestDb.js"

const testLayer = (config: JobWatchConfigInput = {}) =>
  Layer.mergeAll(
    JobWatch.layer,
    Layer.mergeAll(Repos.Default, Notifications.Default).pipe(Layer.provide(JobWatch.MigrationsLive))
  ).pipe(Layer.provideMerge(TestDb.layer(config, { maxConnections: 30 })))

/**
 * Runs `effect` with a `JobsRepo` of its own pool (as another process would): its transitions reach this
 * process's waiters by the doorbell and a read, not by the in-process fast path.
 */
const remotely = <A, E>(effect: Effect.Effect<A, E, Repos>) =>
  Effect.flatMap(JobWatchConfig, ({ schema }) =>
    effect.pipe(
      Effect.provide(Repos.Default.pipe(Layer.provide(Layer.merge(TestDb.pgLayer(4), JobWatchConfig.layer({ schema })))))
    ))

/** Enqueues `n` jobs in a queue of their own. */
const enqueueMany = (n: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const queue = uniqueQueue("w")
    const ids: Array<JobId> = []
    for (let i = 0; i < n; i += 1000) {
      const refs = yield* jobs.enqueueBatch(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ name: `j${i + k}`, queue })))
      ids.push(...refs.map((ref) => ref.id))
    }
    return { queue, ids }
  })

/** A worker in this process: claims the queue's jobs 50 at a time and completes them, 10 at once. */
const completeAll = (queue: string) =>
  Effect.gen(function*() {
    const repo = yield* Repos
    let done = 0
    for (let round = 0; round < 10_000; round++) {
      const claimed = yield* repo.claim({ workerId: "w", queues: [queue], limit: 50, leaseMs: 60_000 })
      if (claimed.length === 0) return done
      yield* Effect.forEach(
        claimed,
        (job) => repo.complete(job.id, { resultJson: JSON.stringify({ n: job.name }) }),
        { concurrency: 10, discard: true }
      )
      done += claimed.length
    }
    return done
  })

const runToCompletion = (id: JobId, result: unknown = { ok: true }) =>
  Effect.gen(function*() {
    const repo = yield* Repos
    yield* repo.start(id)
    yield* repo.complete(id, { resultJson: JSON.stringify(result) })
  })

/** Fails the test (instead of hanging) when `effect` takes longer than `seconds`. */
const within = (seconds: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, {
    duration: Duration.seconds(seconds),
    onTimeout: () => new Error(`did not finish within ${seconds} s`)
  })

/** Kills the listener's connection from another session and waits for it to come back. */
/**
 * Terminates the listener's current connection; answers the reconnect count before. A connection that a previous
 * test already cut may still look connected for a moment: only a termination that hit a live backend counts.
 */
const terminateListener = Effect.gen(function*() {
  const listener = yield* Listener
  const sql = yield* SqlClient.SqlClient
  for (let attempt = 0; attempt < 250; attempt++) {
    yield* awaitConnected(listener)
    const before = (yield* listener.currentState).reconnects
    const pid = yield* listener.backendPid
    if (Option.isSome(pid)) {
      const [row] = yield* sql<{ ok: boolean }>`SELECT pg_terminate_backend(${pid.value}) AS ok`
      if (row?.ok === true) {
        // the signal is sent; wait until the listener has seen its connection die (it may be back already)
        for (let i = 0; i < 1000; i++) {
          const state = yield* listener.currentState
          if (!state.connected || state.reconnects > before) return before
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        }
        return yield* Effect.die(new Error("the listener never noticed its connection was terminated"))
      }
    }
    yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
  }
  return yield* Effect.die(new Error("the listener's connection could not be terminated"))
})

/** Waits in real time, whatever clock the test runs on. */
const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Polls `done` in real time, at most `seconds`. */
const eventually = (done: Effect.Effect<boolean>, seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds * 50; i++) {
      if (yield* done) return
      yield* realSleep(20)
    }
    return yield* Effect.die(`not done within ${seconds} s`)
  })

/** Waits until `n` subscribers are registered with the notification loop. */
const subscribers = (n: number) =>
  Effect.flatMap(Notifications, (notifications) =>
    eventually(Effect.map(notifications.subscriberCount, (count) => count === n), 10))

/** Runs `register` and waits until the notification loop has read the jobs it registered (their first read). */
const registeredAndRead = <A, E, R>(register: Effect.Effect<A, E, R>, jobs = 1) =>
  Effect.gen(function*() {
    const notifications = yield* Notifications
    const base = (yield* notifications.stats).jobsRead
    const registered = yield* register
    yield* eventually(Effect.map(notifications.stats, (s) => s.jobsRead - base >= jobs), 10)
    return registered
  })

layer(testLayer(), { excludeTestServices: true })("CompletionWatcher", (it) => {
  describe("waitFor", () => {
    it.effect("resolves when another connection pool completes the job", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const job = yield* jobIn("claimed")
        const wait = yield* Effect.fork(watcher.waitFor(job.id))
        // another PgClient with its own pool and connections
        yield* remotely(runToCompletion(job.id, { url: "s3://x" }))
        const outcome = yield* Fiber.join(wait).pipe(within(10))
        assert.strictEqual(outcome.status, "completed")
        assert.deepStrictEqual(outcome.result, { url: "s3://x" })
        assert.isTrue(outcome.terminal)
        assert.isNotNull(outcome.finishedAt)
      }))

    it.effect("resolves when a separate OS process completes the jobs", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const { schema } = yield* JobWatchConfig
        const { queue, ids } = yield* enqueueMany(5)
        const waits = yield* Effect.fork(watcher.waitForAll(ids))
        const child = yield* runScript("completeChild.ts", [TestDb.databaseUrl(), schema, queue])
        assert.strictEqual(child.code, 0, child.stderr)
        const outcomes = yield* Fiber.join(waits).pipe(within(10))
        assert.deepStrictEqual(outcomes.map((o) => o.id), ids)
        for (const outcome of outcomes) {
          assert.strictEqual(outcome.status, "completed")
          assert.deepStrictEqual(outcome.result, { by: "child" })
        }
      }), { timeout: 60_000 })

    it.effect("answers at once for a terminal job, with its error; JobNotFound for an unknown id", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const failed = yield* jobIn("failed")
        const outcome = yield* watcher.waitFor(failed.id).pipe(within(5))
        assert.strictEqual(outcome.status, "failed")
        assert.deepStrictEqual(outcome.error, { code: "boom", message: "it broke" })
        const canceled = yield* jobIn("canceled")
        assert.strictEqual((yield* watcher.waitFor(canceled.id).pipe(within(5))).status, "canceled")
        const unknown = yield* Effect.either(watcher.waitFor("0190f2b4-5f5e-7000-8000-000000000000"))
        assert.isTrue(Either.isLeft(unknown) && unknown.left._tag === "JobNotFound")
        const bad = yield* Effect.either(watcher.waitFor("nope"))
        assert.isTrue(Either.isLeft(bad) && bad.left._tag === "InvalidInput")
        const empty = yield* Effect.either(watcher.waitForAll([]))
        assert.isTrue(Either.isLeft(empty) && empty.left._tag === "InvalidInput")
      }))

    for (const where of ["another pool", "this process"] as const) {
      it.effect(`1,000 jobs completing (in ${where}) while their waits register all resolve`, () =>
        Effect.gen(function*() {
          const watcher = yield* CompletionWatcher
          const { queue, ids } = yield* enqueueMany(1000)
          const work = completeAll(queue)
          const run: Effect.Effect<number, unknown, Repos | JobWatchConfig> = where === "another pool"
            ? remotely(work)
            : work
          const worker = yield* Effect.fork(run)
          // each wait registers on its own, interleaved with the worker's completions
          const outcomes = yield* Effect.forEach(ids, (id) => watcher.waitFor(id), { concurrency: 100 }).pipe(within(60))
          assert.strictEqual(yield* Fiber.join(worker), 1000)
          assert.strictEqual(outcomes.length, 1000)
          for (const outcome of outcomes) assert.strictEqual(outcome.status, "completed")
        }), { timeout: 90_000 })
    }
  })

  describe("waitForAll, waitForFirst, interruption", () => {
    it.effect("waitForAll answers in input order, a repeated id once", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const notifications = yield* Notifications
        const a = yield* jobIn("running")
        const b = yield* jobIn("running")
        const all = yield* Effect.fork(watcher.waitForAll([b.id, a.id, b.id]))
        // a repeated id is registered once
        yield* subscribers(2)
        assert.strictEqual(yield* notifications.subscriberCount, 2)
        yield* runToCompletion2(a.id)
        yield* runToCompletion2(b.id)
        const outcomes = yield* Fiber.join(all).pipe(within(10))
        assert.deepStrictEqual(outcomes.map((o) => o.id), [b.id, a.id, b.id])
      }))

    it.effect("watchMany streams each outcome as it lands, in completion order, and ends after the last", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const a = yield* jobIn("running")
        const b = yield* jobIn("running")
        const c = yield* jobIn("running")
        const landed = yield* Queue.unbounded<JobOutcome>()
        const stream = yield* Effect.fork(
          Stream.runForEach(watcher.watchMany([a.id, b.id, c.id, a.id]), (outcome) => Queue.offer(landed, outcome))
        )
        yield* subscribers(3)
        // one at a time, each seen before the next finishes: the order is the completion order, not the input's
        for (const job of [b, c, a]) {
          yield* runToCompletion2(job.id)
          assert.strictEqual((yield* Queue.take(landed).pipe(within(10))).id, job.id)
        }
        yield* Fiber.join(stream).pipe(within(10))
        assert.strictEqual(yield* Queue.size(landed), 0)
        assert.strictEqual(yield* (yield* Notifications).subscriberCount, 0)
        const unknown = yield* Stream.runDrain(watcher.watchMany([a.id, "0190f2b4-5f5e-7000-8000-000000000000"])).pipe(
          Effect.flip,
          within(10)
        )
        assert.strictEqual(unknown._tag, "JobNotFound")
      }))

    it.effect("waitForAll ends a span of its own, a child of the caller's, with its exit; waitFor makes none", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const spans: Array<Tracer.Span> = []
        const recording = yield* Effect.tracerWith((base) =>
          Effect.succeed(Tracer.make({
            span: (...args) => {
              const span = base.span(...args)
              spans.push(span)
              return span
            },
            context: (f, fiber) => base.context(f, fiber)
          }))
        )
        const a = yield* jobIn("running")
        const b = yield* jobIn("running")
        const waits = yield* Effect.fork(
          Effect.all([watcher.waitFor(a.id), watcher.waitForAll([a.id, b.id]), Effect.either(watcher.waitFor("nope"))])
            .pipe(Effect.withSpan("caller"), Effect.withTracer(recording))
        )
        // one after the other: the first waitFor is registered
        yield* subscribers(1)
        yield* runToCompletion2(a.id)
        yield* runToCompletion2(b.id)
        yield* Fiber.join(waits).pipe(within(10))
        const caller = spans.find((span) => span.name === "caller")!
        const named = (name: string) => spans.filter((span) => span.name === name)
        // a waiter by the thousand: a span held while it waits was half of what a waiter cost
        assert.lengthOf(named("CompletionWatcher.waitFor"), 0)
        assert.lengthOf(named("CompletionWatcher.waitForAll"), 1)
        for (const span of named("CompletionWatcher.waitForAll")) {
          assert.strictEqual(Option.getOrUndefined(span.parent)?.spanId, caller.spanId)
          assert.strictEqual(span.status._tag === "Ended" ? span.status.exit._tag : "open", "Success")
        }
      }))

    it.effect("waitForFirst answers the first to finish and releases the other registrations", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const notifications = yield* Notifications
        const jobs = yield* Effect.all(Array.from({ length: 5 }, () => jobIn("claimed")))
        const first = yield* Effect.fork(watcher.waitForFirst(jobs.map((j) => j.id)))
        yield* subscribers(5)
        yield* runToCompletion(jobs[3]!.id, "third")
        const outcome = yield* Fiber.join(first).pipe(within(10))
        assert.strictEqual(outcome.id, jobs[3]!.id)
        assert.strictEqual(outcome.result, "third")
        assert.strictEqual(yield* notifications.subscriberCount, 0)
        assert.strictEqual(yield* notifications.watchedCount, 0)
      }))

    it.effect("interrupted waiters leave the subscription index empty", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const notifications = yield* Notifications
        const { ids } = yield* enqueueMany(200)
        const fibers = yield* Effect.forEach(ids, (id) => Effect.fork(watcher.waitFor(id)))
        const streams = yield* Effect.fork(Stream.runDrain(watcher.watch(ids[0]!)))
        yield* subscribers(201)
        assert.strictEqual(yield* notifications.watchedCount, 200)
        yield* Fiber.interruptAll([...fibers, streams])
        assert.strictEqual(yield* notifications.subscriberCount, 0)
        assert.strictEqual(yield* notifications.watchedCount, 0)
      }))
  })

  describe("awaitCompletion, isComplete, changes, watch", () => {
    it.effect("awaitCompletion answers the latest JobInfo on timeout, and the terminal one when it finishes", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const job = yield* jobIn("running")
        const timedOut = yield* watcher.awaitCompletion(job.id, "200 millis")
        assert.strictEqual(timedOut.status, "running")
        assert.isFalse(yield* watcher.isComplete(job.id))
        const waiting = yield* Effect.fork(watcher.awaitCompletion(job.id, "10 seconds"))
        yield* (yield* Repos).complete(job.id, { resultJson: "42" })
        const info = yield* Fiber.join(waiting)
        assert.strictEqual(info.status, "completed")
        assert.strictEqual(info.result, 42)
        assert.isTrue(yield* watcher.isComplete(job.id))
      }))

    it.effect("changes answers the events after a version, at once or when the next one comes", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const job = yield* jobIn("claimed")
        const past = yield* watcher.changes(job.id, 0).pipe(within(5))
        assert.deepStrictEqual(past.map((e) => e.version), [1, 2])
        // registered and caught up (nothing after version 2 yet): the start below is "the next one"
        const next = yield* registeredAndRead(Effect.fork(watcher.changes(job.id, 2)))
        yield* (yield* Repos).start(job.id)
        const events = yield* Fiber.join(next).pipe(within(5))
        assert.deepStrictEqual(events.map((e) => [e.version, e.status]), [[3, "running"]])
        const unknown = yield* Effect.either(watcher.changes("0190f2b4-5f5e-7000-8000-000000000000", 0))
        assert.isTrue(Either.isLeft(unknown) && unknown.left._tag === "JobNotFound")
      }))

    it.effect("watch streams versions 1..n exactly once, in order, across a listener reconnect", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const listener = yield* Listener
        const queue = uniqueQueue("watch")
        const ref = yield* (yield* Jobs).enqueue({ name: "long", queue, maxAttempts: 10 })
        const seen = yield* Ref.make<Array<number>>([])
        const collected = yield* Effect.fork(
          watcher.watch(ref.id).pipe(
            Stream.tap((e) => Ref.update(seen, (xs) => [...xs, e.version])),
            Stream.runCollect
          )
        )
        const attempt = (last: boolean) =>
          Effect.gen(function*() {
            const repo = yield* Repos
            yield* repo.claim({ workerId: "w", queues: [queue], limit: 1, leaseMs: 60_000 })
            yield* repo.start(ref.id)
            if (last) yield* repo.complete(ref.id, { resultJson: "true" })
            else yield* repo.retry(ref.id, { delayMs: 0, code: "again", error: "try again" })
          })
        for (let i = 0; i < 3; i++) yield* attempt(false)
        const reconnectsBefore = yield* terminateListener
        // from another pool, while the listener is down or reconnecting: only the reconcile can deliver these
        yield* remotely(Effect.gen(function*() {
          for (let i = 0; i < 3; i++) yield* attempt(false)
          yield* attempt(true)
        }))
        const events = Chunk.toReadonlyArray(yield* Fiber.join(collected).pipe(within(30)))
        const versions = events.map((e) => e.version)
        assert.deepStrictEqual(versions, Array.from({ length: 22 }, (_, i) => i + 1))
        assert.strictEqual(events[events.length - 1]!.status, "completed")
        // the events may all be in before the reconnect is counted (the doorbells of the remote writes can beat the
        // connection's death): wait for it to be counted, rather than read it at once
        const after = yield* listener.state.changes.pipe(
          Stream.filter((state) => state.reconnects > reconnectsBefore),
          Stream.runHead,
          within(30)
        )
        assert.isTrue(Option.isSome(after))
      }), { timeout: 60_000 })

    it.effect("watch of an unknown job fails with JobNotFound; from a version it skips the earlier events", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const unknown = yield* Effect.either(Stream.runDrain(watcher.watch("0190f2b4-5f5e-7000-8000-000000000000")))
        assert.isTrue(Either.isLeft(unknown) && unknown.left._tag === "JobNotFound")
        const done = yield* jobIn("completed")
        const tail = yield* Stream.runCollect(watcher.watch(done.id, { afterVersion: 2 })).pipe(within(5))
        assert.deepStrictEqual(Chunk.toReadonlyArray(tail).map((e) => e.version), [3, 4])
      }))
  })

  describe("a dead LISTEN connection", () => {
    it.effect("reconnects, reconciles, and every waiter resolves: none lost", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const listener = yield* Listener
        const { queue, ids } = yield* enqueueMany(300)
        const waits = yield* Effect.fork(watcher.waitForAll(ids))
        yield* subscribers(300)
        const before = yield* terminateListener
        yield* remotely(completeAll(queue))
        const outcomes = yield* Fiber.join(waits).pipe(within(30))
        assert.strictEqual(outcomes.filter((o) => o.status === "completed").length, 300)
        const state = yield* listener.currentState
        assert.isTrue(state.connected)
        assert.isAbove(state.reconnects, before)
        assert.isTrue(Option.isSome(state.lastError))
      }), { timeout: 60_000 })
  })
})

/** claimed → running → completed (for jobs made by `jobIn("running")` this starts at running). */
const runToCompletion2 = (id: JobId) =>
  Effect.gen(function*() {
    const repo = yield* Repos
    yield* repo.complete(id, { resultJson: "null" })
  })

// under the TestClock: the refresh schedule moves only when the test says so
layer(testLayer({ refreshInterval: "5 seconds" }))("lost notifications, on the test clock", (it) => {
  it.effect("with the doorbell silent, waiters resolve at the next refresh, within one interval, not before", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      yield* sql.unsafe(`ALTER TABLE "${schema}".job_events DISABLE TRIGGER job_events_doorbell`)
      const { queue, ids } = yield* enqueueMany(50)
      const marker = yield* jobIn("running")
      const base = (yield* notifications.stats).jobsRead
      const waits = yield* Effect.fork(watcher.waitForAll(ids))
      const markerWait = yield* Effect.fork(watcher.waitFor(marker.id))
      yield* eventually(Effect.map(notifications.stats, (s) => s.jobsRead - base >= 51), 10)
      yield* remotely(completeAll(queue))
      // a doorbell rung by hand for the marker alone, after the completions committed: once the marker's waiter
      // has resolved, this process has handled everything the database could have told it about them
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(marker.id, { resultJson: "1" })))
      const { version } = yield* (yield* Jobs).get(marker.id)
      yield* sql`SELECT pg_notify(${`${schema}.doorbell`}, ${`${marker.id}:${version}`})`
      yield* Fiber.join(markerWait).pipe(Effect.timeout("10 seconds"), Effect.provide(Layer.setClock(Clock.make())))
      assert.isTrue(Option.isNone(yield* Fiber.poll(waits)), "nothing can tell this process before the refresh")
      yield* TestClock.adjust("5 seconds")
      yield* eventually(Effect.map(Fiber.poll(waits), Option.isSome), 10)
      const outcomes = yield* Fiber.join(waits)
      assert.strictEqual(outcomes.filter((o) => o.status === "completed").length, 50)
      assert.isAbove((yield* notifications.stats).reconciles, 0)
    }), { timeout: 60_000 })
})

layer(testLayer({ refreshInterval: null }), { excludeTestServices: true })("no refresh, healthy listener", (it) => {
  it.scoped("an outcome too large to ride the notification, committed while the waiters' first read is in flight, reaches them by the doorbell", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const { schema } = yield* JobWatchConfig
      // another pool, with its SQL client, to hold the completing transaction open
      const other = yield* Layer.build(
        Repos.Default.pipe(Layer.provideMerge(Layer.merge(TestDb.pgLayer(4), JobWatchConfig.layer({ schema }))))
      )
      const repo = Context.get(other, Repos)
      const sql = Context.get(other, SqlClient.SqlClient)
      // over 3,900 bytes: no outcome notification; nothing polls here: only the doorbell can tell the waiters
      const pad = "x".repeat(5000)
      let done = 0
      for (let round = 0; round < 10; round++) {
        const { queue, ids } = yield* enqueueMany(1000)
        const claimed = yield* repo.claim({ workerId: "big", queues: [queue], limit: 1000, leaseMs: 60_000 })
        assert.strictEqual(claimed.length, 1000)
        const before = yield* notifications.stats
        const inFlight = Effect.map(notifications.stats, (s) => s.reads > before.reads && s.jobsRead === before.jobsRead)
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* repo.completeMany("big", ids.map((id) => ({ id, resultJson: JSON.stringify({ pad }), message: null })))
          // the waits register now: their first read sees the jobs still running (this transaction has not
          // committed), and the commit (with its doorbell) lands while that read is in flight
          yield* Effect.fork(Effect.forEach(ids, (id) => watcher.waitFor(id), { concurrency: "unbounded" }).pipe(
            Effect.tap((outcomes) => Effect.sync(() => outcomes.forEach((o) => assert.strictEqual(o.status, "completed")))),
            Effect.flatMap(() => Effect.sync(() => (done += 1)))
          ))
          for (let i = 0; i < 5000 && !(yield* inFlight); i++) yield* Effect.yieldNow()
        }))
        for (let i = 0; i < 1000 && done === round; i++) yield* Effect.sleep(Duration.millis(20))
        assert.strictEqual(done, round + 1, `round ${round}: the waiters did not all resolve within 20 s`)
      }
    }), { timeout: 240_000 })

  it.effect("nothing polls: an idle watched job costs no reads; its outcome comes in the notification", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const job = yield* jobIn("running")
      // after the registration's own snapshot read
      const wait = yield* registeredAndRead(Effect.fork(watcher.waitFor(job.id)))
      const before = yield* notifications.stats
      // idle for a second (the window in which a poll would show; no assertion waits on it)
      yield* Effect.sleep(Duration.seconds(1))
      const after = yield* notifications.stats
      assert.strictEqual(after.reads, before.reads)
      assert.strictEqual(after.reconciles, before.reconciles)
      // a small outcome travels in the notification: no read at all
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(job.id, { resultJson: "1" })))
      assert.strictEqual((yield* Fiber.join(wait).pipe(within(10))).result, 1)
      // a large one only rings the doorbell: one read (after the registration's). Its doorbell comes after the small
      // one's, so a read the small one caused would have happened by the time the large one resolves: the reads
      // since `after` are exactly the large one's two
      const big = yield* jobIn("running")
      const bigWait = yield* registeredAndRead(Effect.fork(watcher.waitFor(big.id)))
      const beforeBig = yield* notifications.stats
      const result = { blob: "x".repeat(5000) }
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(big.id, { resultJson: JSON.stringify(result) })))
      assert.deepStrictEqual((yield* Fiber.join(bigWait).pipe(within(10))).result, result)
      assert.strictEqual((yield* notifications.stats).reads, beforeBig.reads + 1)
      assert.strictEqual(beforeBig.reads, after.reads + 1, "the small outcome cost no read")
    }))

  it.effect("a burst of 10,000 transitions on watched jobs costs a bounded number of reads", () =>
    Effect.gen(function*() {
      const notifications = yield* Notifications
      const repo = yield* Repos
      const { debounce } = yield* JobWatchConfig
      const { queue, ids } = yield* enqueueMany(10_000)
      const base = (yield* notifications.stats).jobsRead
      // followers of every event (as streams are: waiters would read nothing for these transitions)
      const waits = yield* Effect.fork(Effect.scoped(Effect.zipRight(
        notifications.subscribeMany(ids.map((id) => ({ id, from: { afterVersion: 1 }, subscriber: { onEvents: () => {} } }))),
        Effect.never
      )))
      // every follower registered and its catch-up read
      yield* Effect.gen(function*() {
        while ((yield* notifications.subscriberCount) < 10_000 || (yield* notifications.stats).jobsRead - base < 10_000) {
          yield* Effect.sleep(Duration.millis(20))
        }
      }).pipe(within(30))
      const before = yield* notifications.stats
      const started = Date.now()
      // 100 statements of 100 transitions each (pending → claimed), as fast as they go
      for (let i = 0; i < 100; i++) {
        yield* repo.claim({ workerId: "burst", queues: [queue], limit: 100, leaseMs: 60_000 })
      }
      const elapsed = Date.now() - started
      // wait until every transition has been read (each job moved to version 2)
      yield* Effect.gen(function*() {
        while ((yield* notifications.stats).jobsRead - before.jobsRead < 10_000) yield* Effect.sleep(Duration.millis(20))
      }).pipe(within(30))
      yield* Effect.sleep(Duration.toMillis(debounce) * 2)
      const after = yield* notifications.stats
      const reads = after.reads - before.reads
      // bounded by one read per debounce window of the burst, each split in chunks of 1,000, plus the tail
      const bound = Math.ceil(elapsed / Duration.toMillis(debounce)) + Math.ceil(10_000 / 1000) + 3
      assert.isAtMost(reads, bound, `${reads} reads for a ${elapsed} ms burst`)
      assert.isAtMost(after.jobsRead - before.jobsRead, 10_000 + 1000, "each changed job is read about once")
      yield* Fiber.interrupt(waits)
    }), { timeout: 90_000 })
})

layer(testLayer({ refreshInterval: null, debounce: "20 seconds" }), { excludeTestServices: true })(
  "a lone event",
  (it) => {
    it.effect("is handled at once, without waiting for the coalescing window", () =>
      Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const job = yield* jobIn("running")
        const done = yield* Deferred.make<void>()
        // registered and read: only the doorbell can resolve it now
        const wait = yield* registeredAndRead(
          Effect.fork(watcher.waitFor(job.id).pipe(Effect.tap(() => Deferred.succeed(done, undefined))))
        )
        yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(job.id, { resultJson: "1" })))
        // far below the 20 s window
        yield* Deferred.await(done).pipe(within(5))
        assert.strictEqual((yield* Fiber.join(wait)).status, "completed")
      }))
  }
)

layer(testLayer({ refreshInterval: null }), { excludeTestServices: true })("the in-process fast path", (it) => {
  it.effect("a completion committed by this process resolves its waiter without a read", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      // after the first connect's reconcile, so that no reconcile read can come in between
      yield* awaitConnected(yield* Listener)
      yield* eventually(Effect.map(notifications.stats, (s) => s.reconciles >= 1), 10)
      // without the doorbell, only the fast path can deliver (and the doorbell cannot race it)
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      yield* sql.unsafe(`ALTER TABLE "${schema}".job_events DISABLE TRIGGER job_events_doorbell`)
      const job = yield* jobIn("running")
      const wait = yield* registeredAndRead(Effect.fork(watcher.waitFor(job.id)))
      const before = (yield* notifications.stats).reads
      yield* (yield* Repos).complete(job.id, { resultJson: "7" })
      const outcome = yield* Fiber.join(wait).pipe(within(5))
      assert.strictEqual(outcome.result, 7)
      assert.strictEqual((yield* notifications.stats).reads, before)
    }))
})
