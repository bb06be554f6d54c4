import { assert, describe, it, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Chunk, Deferred, Duration, Effect, Either, Fiber, Layer, Option, Schema, Stream } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { makeJobId } from "../src/Domain/JobId.js"
import { parseDoorbell } from "../src/EventLog/Doorbell.js"
import { decodeOutcomePayload, fromOutcomeJson, OutcomePayload } from "../src/EventLog/Outcome.js"
import * as JobWatch from "../src/JobWatch.js"
import { Notifications } from "../src/Notifications.js"
import { jobIn } from "./support/fixtures.js"
import { Repos } from "./support/repos.js"
import * as TestDb from "./support/TestDb.js"

// Waiters pay only for what they wait for (issue 18, items 3 and 5): the doorbell protocol as a waiter-only
// process sees it, the outcomes it carries, and the armed signal of `CompletionWatcher.subscribe`.

const testLayer = Layer.mergeAll(
  JobWatch.layer,
  Layer.mergeAll(Repos.Default, Notifications.Default).pipe(Layer.provide(JobWatch.MigrationsLive))
).pipe(Layer.provideMerge(TestDb.layer({ refreshInterval: null }, { maxConnections: 10 })))

/** Runs `effect` on a pool of its own (as another process would): its changes reach this one by the doorbell only. */
const remotely = <A, E>(effect: Effect.Effect<A, E, Repos>) =>
  Effect.flatMap(JobWatchConfig, ({ schema }) =>
    effect.pipe(
      Effect.provide(Repos.Default.pipe(Layer.provide(Layer.merge(TestDb.pgLayer(2), JobWatchConfig.layer({ schema })))))
    ))

const within = (seconds: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, {
    duration: Duration.seconds(seconds),
    onTimeout: () => new Error(`did not finish within ${seconds} s`)
  })

/** Waits (bounded) until `condition` holds. */
const until = (condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    while (!(yield* condition)) yield* Effect.sleep(Duration.millis(5))
  }).pipe(within(10))

/** A follower of every event of `id` (as streams are), telling each version it gets. */
const follow = (id: JobId, seen: (version: number) => void) =>
  Effect.flatMap(Notifications, (notifications) =>
    notifications.subscribe(id, { afterVersion: 0 }, {
      onEvents: (events) => events.forEach((event) => seen(event.version))
    }))

layer(testLayer, { excludeTestServices: true })("a waiter-only process", (it) => {
  it.scoped("reads nothing for a start or a progress doorbell, nor for a completion whose outcome rides along", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const job = yield* jobIn("claimed")
      const marker = yield* jobIn("pending")
      const armed = yield* watcher.subscribe([job.id])
      const before = yield* notifications.stats
      // the positive event: a follower of another job, changed after the waited job's start and progress
      const markerSeen = yield* Deferred.make<void>()
      yield* follow(marker.id, (version) => version === 2 && Deferred.unsafeDone(markerSeen, Effect.void))
      yield* until(Effect.map(notifications.stats, (s) => s.jobsRead > before.jobsRead))
      const followed = yield* notifications.stats
      yield* remotely(Effect.gen(function*() {
        const repo = yield* Repos
        yield* repo.start(job.id)
        yield* repo.writeProgress(job.id, { percent: 40 }, { now: new Date() })
        yield* repo.cancel(marker.id)
      }))
      yield* Deferred.await(markerSeen).pipe(within(10))
      const afterMarker = yield* notifications.stats
      // the marker's doorbell came after the start and the progress: only the marker was read, unless the LISTEN
      // connection was re-established meanwhile (a reconcile reads every watched job, whatever the doorbells said)
      if (afterMarker.reconciles === followed.reconciles) assert.strictEqual(afterMarker.jobsRead - followed.jobsRead, 1)
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(job.id, { resultJson: JSON.stringify({ n: 1 }) })))
      const outcomes = yield* Stream.runCollect(armed).pipe(within(10))
      assert.deepStrictEqual(Chunk.toReadonlyArray(outcomes).map((o) => [o.id, o.status, o.result]), [
        [job.id, "completed", { n: 1 }]
      ])
      const last = yield* notifications.stats
      if (last.reconciles === afterMarker.reconciles) {
        assert.strictEqual(last.jobsRead, afterMarker.jobsRead, "the outcome rode the doorbell")
      }
    }))

  it.scoped("an outcome too large for the doorbell resolves its waiter through a read", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const job = yield* jobIn("running")
      const wait = yield* Effect.fork(watcher.waitFor(job.id))
      yield* until(Effect.map(notifications.stats, (s) => s.jobsRead > 0))
      yield* until(Effect.map(notifications.subscriberCount, (n) => n === 1))
      const before = yield* notifications.stats
      const result = "x".repeat(5000)
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(job.id, { resultJson: JSON.stringify(result) })))
      const outcome = yield* Fiber.join(wait).pipe(within(10))
      assert.strictEqual(outcome.result, result)
      assert.isAbove((yield* notifications.stats).reads, before.reads)
    }))

  it.scoped("a malformed doorbell neither crashes nor resolves a waiter: the job is read instead", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      const job = yield* jobIn("running")
      const wait = yield* Effect.fork(watcher.waitFor(job.id))
      yield* until(Effect.map(notifications.stats, (s) => s.jobsRead > 0))
      const before = yield* notifications.stats
      const forged = [
        `#,${job.id}:9,[{"id":"${job.id}","version":"9","status":"completed","errorCode":null,"errorMessage":null,"at":null}]`,
        `#,${job.id}:9,[{"id":"${job.id}","version":9,"status":"done","errorCode":null,"errorMessage":null,"at":null}]`,
        `#,${job.id}:9,[{"id":"${job.id}",`,
        `#,${job.id}:9,[null]`,
        `#,${job.id}:9,["${job.id}"]`,
        `#,:,!,::,${job.id}:x,[`
      ]
      for (const payload of forged) yield* sql`SELECT pg_notify(${`${schema}.doorbell`}, ${payload})`
      // the malformed outcomes make the waiter read its job (it is still running)
      yield* until(Effect.map(notifications.stats, (s) => s.jobsRead > before.jobsRead))
      assert.isTrue(Option.isNone(yield* Fiber.poll(wait)), "not resolved by a forged notification")
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(job.id, { resultJson: "7" })))
      const outcome = yield* Fiber.join(wait).pipe(within(10))
      assert.deepStrictEqual([outcome.status, outcome.result], ["completed", 7])
    }))
})

layer(testLayer, { excludeTestServices: true })("CompletionWatcher.subscribe", (it) => {
  it.scoped("returns once armed: every job registered and read; finished jobs first, then each as it lands", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const done = yield* jobIn("completed")
      const later = yield* jobIn("running")
      const before = yield* notifications.stats
      const outcomes = yield* watcher.subscribe([later.id, done.id, later.id])
      // armed: both registered and their snapshot read, before anything else happens
      assert.strictEqual(yield* notifications.subscriberCount, 2)
      assert.strictEqual((yield* notifications.stats).jobsRead - before.jobsRead, 2)
      yield* remotely(Effect.flatMap(Repos, (repo) => repo.complete(later.id, { resultJson: "1" })))
      const landed = Chunk.toReadonlyArray(yield* Stream.runCollect(outcomes).pipe(within(10)))
      assert.deepStrictEqual(landed.map((o) => o.id), [done.id, later.id])
    }))

  it.scoped("fails with JobNotFound when a job is unknown; releases its registrations with its scope", () =>
    Effect.gen(function*() {
      const watcher = yield* CompletionWatcher
      const notifications = yield* Notifications
      const job = yield* jobIn("running")
      const unknown = makeJobId()
      const failed = yield* Effect.either(Effect.scoped(watcher.subscribe([job.id, unknown])))
      assert.isTrue(Either.isLeft(failed) && failed.left._tag === "JobNotFound" && failed.left.id === unknown)
      yield* Effect.scoped(watcher.subscribe([job.id]))
      assert.strictEqual(yield* notifications.subscriberCount, 0)
    }))
})

describe("the doorbell payload", () => {
  const id = makeJobId()
  const item = { id, version: 4, status: "completed", result: { a: [1] }, errorCode: null, errorMessage: null, at: "2026-12-02T04:00:00.123456+00:00" }

  it("the hand-made outcome decode agrees with the Schema of job_outcome_json", () => {
    const payload = JSON.stringify([item, { ...item, status: "failed", result: null, errorCode: "E", errorMessage: "m" }])
    const bySchema = Schema.decodeUnknownSync(OutcomePayload)(payload).map(fromOutcomeJson)
    assert.deepStrictEqual(decodeOutcomePayload(payload), bySchema)
  })

  it("reads pairs, flags and outcomes; an older payload may be terminal anywhere; bad outcomes are dropped", () => {
    const other = makeJobId()
    const modern = parseDoorbell(`#,${id}:4,${other}:2,!${other},[${JSON.stringify(item)}]`)
    assert.deepStrictEqual(modern.changes, [id, 4, other, 2])
    assert.deepStrictEqual(modern.uncarried === "any" ? "any" : [...modern.uncarried], [other])
    assert.deepStrictEqual(modern.outcomes.map((o) => [o.id, o.version]), [[id, 4]])
    const older = parseDoorbell(`${id}:4,${other}:2`)
    assert.deepStrictEqual([older.changes, older.uncarried], [[id, 4, other, 2], "any"])
    const bad = parseDoorbell(`#,${id}:4,[{"id":"${id}"}]`)
    assert.deepStrictEqual([bad.changes, bad.uncarried, bad.outcomes, bad.malformed], [[id, 4], "any", [], true])
    assert.isTrue(parseDoorbell("*").everything)
    for (const junk of ["#", "#,", ",,,", "#,[", "#,x:y:z", "[1,2]"]) assert.doesNotThrow(() => parseDoorbell(junk))
  })
})
