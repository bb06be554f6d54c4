import { assert, describe, it } from "@effect/vitest"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Duration, Effect, Either, Fiber, Layer, Option, Stream, TestClock } from "effect"
import type { JobWatchConfigInput } from "../src/Config.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { Jobs } from "../src/Jobs.js"
import { PurgeRepo } from "../src/Jobs/PurgeRepo.js"
import { Notifications } from "../src/Notifications.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { Webhooks } from "../src/Webhooks.js"
import * as Reaper from "../src/Workers/Reaper.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { eventually, testLayer } from "./support/workers.js"

/** jobwatch on a schema of its own (the reaper not campaigning), with the process's `Notifications` exposed. */
const onFreshSchema = (config: JobWatchConfigInput = {}) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Notifications.Default.pipe(Layer.provideMerge(testLayer(config)))), Effect.scoped)

/** What is left of jobs `ids` in the tables: jobs, events, webhook deliveries and attempts. */
const leftOf = (ids: ReadonlyArray<JobId>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const [row] = yield* sql.unsafe<{ jobs: number; events: number; deliveries: number; attempts: number }>(
      `SELECT (SELECT count(*)::int FROM "${schema}".jobs WHERE id = ANY($1::uuid[])) AS jobs,
        (SELECT count(*)::int FROM "${schema}".job_events WHERE job_id = ANY($1::uuid[])) AS events,
        (SELECT count(*)::int FROM "${schema}".webhook_deliveries WHERE job_id = ANY($1::uuid[])) AS deliveries,
        (SELECT count(*)::int FROM "${schema}".webhook_attempts a JOIN "${schema}".webhook_deliveries d
          ON d.id = a.delivery_id WHERE d.job_id = ANY($1::uuid[])) AS attempts`,
      [ids]
    )
    return row!
  })

/** `n` jobs of `owner` on `queue`, claimed and completed (in batches of 1,000). */
const completed = (queue: string, n: number, owner?: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const ids: Array<JobId> = []
    for (let done = 0; done < n; done += 1000) {
      const size = Math.min(1000, n - done)
      const batch = Array.from({ length: size }, (_, i) => ({ name: `old-${done + i}`, queue, owner }))
      yield* jobs.enqueueBatch(batch)
      const claimed = yield* workers.claim("w-retention", { queues: [queue], limit: 1000 })
      yield* workers.completeMany("w-retention", claimed.map((job) => ({ id: job.id, result: { ok: true } })))
      ids.push(...claimed.map((job) => job.id))
    }
    return ids
  })

const finishedAt = (ids: ReadonlyArray<JobId>, pick: "min" | "max") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const [row] = yield* sql.unsafe<{ at: Date }>(
      `SELECT ${pick}(finished_at) AS at FROM "${schema}".jobs WHERE id = ANY($1::uuid[])`,
      [ids]
    )
    return row!.at
  })

describe("retention: job_purge", () => {
  it.effect("removes jobs finished before the cutoff with their events, deliveries and attempts; keeps the rest", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const purge = yield* PurgeRepo
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      const hooks = yield* Webhooks
      yield* hooks.create("alice", { url: "http://127.0.0.1:9/hook", eventTypes: ["all"] })
      const queue = uniqueQueue("purge")
      const old = yield* completed(queue, 3, "alice")
      const canceled = yield* jobs.enqueue({ name: "old-canceled", queue, owner: "alice" })
      yield* jobs.cancel(canceled.id)
      const oldIds = [...old, canceled.id]
      // an attempt of one of their deliveries (the deliverer is off: written here)
      yield* sql.unsafe(
        `INSERT INTO "${schema}".webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
         SELECT id, 1, now(), 5, 500 FROM "${schema}".webhook_deliveries WHERE job_id = $1 LIMIT 1`,
        [canceled.id]
      )
      const cutoff = new Date((yield* finishedAt(oldIds, "max")).getTime() + 1)
      const newer = yield* completed(queue, 2, "alice")
      const running = yield* jobs.enqueue({ name: "unfinished", queue, owner: "alice" })
      assert.isAbove((yield* finishedAt(newer, "min")).getTime(), cutoff.getTime(), "the newer jobs finished later")
      const before = yield* leftOf(oldIds)
      assert.strictEqual(before.jobs, 4)
      assert.isAbove(before.deliveries, 0)
      assert.strictEqual(before.attempts, 1)

      const removed = yield* purge.purge({ before: cutoff }, 1000)
      assert.sameMembers(removed.map((r) => r.id), oldIds)
      assert.deepStrictEqual(removed.find((r) => r.id === canceled.id)?.status, "canceled")
      assert.deepStrictEqual(yield* leftOf(oldIds), { jobs: 0, events: 0, deliveries: 0, attempts: 0 })
      const kept = yield* leftOf([...newer, running.id])
      assert.strictEqual(kept.jobs, 3)
      assert.isAbove(kept.events, 3)
      assert.isAbove(kept.deliveries, 0)
      assert.strictEqual((yield* jobs.get(running.id)).status, "pending")
      // nothing more is that old
      assert.lengthOf(yield* purge.purge({ before: cutoff }, 1000), 0)
    }).pipe(onFreshSchema({ webhooks: false, webhookAllowPrivate: true })))

  it.effect("2,500 old jobs go in 3 statements of at most 1,000", () =>
    Effect.gen(function*() {
      const purge = yield* PurgeRepo
      const queue = uniqueQueue("batches")
      const ids = yield* completed(queue, 2500)
      const cutoff = new Date((yield* finishedAt(ids, "max")).getTime() + 1)
      const batches = yield* Reaper.purgeFinished(purge, cutoff)
      assert.deepStrictEqual(batches, [1000, 1000, 500])
      assert.strictEqual((yield* leftOf(ids)).jobs, 0)
    }).pipe(onFreshSchema()), { timeout: 120_000 })
})

describe("retention: the reaper", () => {
  /** A finished and an unfinished job; the reaper's pass at +30 s keeps both, at +10 min purges the finished one. */
  const scenario = Effect.gen(function*() {
    const jobs = yield* Jobs
    const reaper = yield* Reaper.Reaper
    const queue = uniqueQueue("reaped")
    const [done] = yield* completed(queue, 1)
    const waiting = yield* jobs.enqueue({ name: "waits", queue, runAt: new Date(Date.now() + 24 * 3600_000) })
    yield* TestClock.adjust("30 seconds")
    yield* reaper.runOnce
    assert.strictEqual((yield* leftOf([done!])).jobs, 1, "younger than the retention")
    yield* TestClock.adjust("10 minutes")
    yield* reaper.runOnce
    return { done: done!, waiting: waiting.id, state: yield* reaper.state }
  })

  it.effect("purges jobs finished longer than JOBWATCH_RETENTION ago", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const { done, state, waiting } = yield* scenario
      assert.deepStrictEqual(yield* leftOf([done]), { jobs: 0, events: 0, deliveries: 0, attempts: 0 })
      assert.strictEqual(state.purged, 1)
      assert.strictEqual((yield* jobs.get(waiting)).status, "scheduled")
      const gone = yield* Effect.either(jobs.get(done))
      assert.isTrue(Either.isLeft(gone) && gone.left._tag === "JobNotFound")
    }).pipe(onFreshSchema({ retention: "1 minute", refreshInterval: null })))

  it.effect("with retention off, nothing is purged", () =>
    Effect.gen(function*() {
      const { done, state } = yield* scenario
      assert.strictEqual((yield* leftOf([done])).jobs, 1)
      assert.strictEqual(state.purged, 0)
    }).pipe(onFreshSchema({ retention: null, refreshInterval: null })))

  it.effect("the elected reaper purges on its own passes", () =>
    Effect.gen(function*() {
      const reaper = yield* Reaper.Reaper
      const [done] = yield* completed(uniqueQueue("elected"), 1)
      yield* eventually(reaper.state, (s) => s.leader)
      let left = 1
      for (let step = 0; step < 20 && left > 0; step++) {
        const passes = (yield* reaper.state).passes
        yield* TestClock.adjust("1 minute")
        yield* eventually(reaper.state, (s) => s.passes > passes)
        left = (yield* leftOf([done!])).jobs
      }
      assert.strictEqual(left, 0)
      assert.strictEqual((yield* reaper.state).purged, 1)
    }).pipe(onFreshSchema({ reaper: true, reaperInterval: "1 second", retention: "2 minutes", refreshInterval: null })),
    { timeout: 60_000 })

  it.effect("JOBWATCH_RETENTION: 7 days by default, off keeps finished jobs forever, zero is refused", () =>
    Effect.gen(function*() {
      const retention = (env: Record<string, string>) =>
        JobWatchConfig.pipe(
          Effect.provide(JobWatchConfig.layerConfig),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
          Effect.map((config) => config.retention)
        )
      assert.deepStrictEqual(yield* retention({}), Option.some(Duration.days(7)))
      assert.deepStrictEqual(yield* retention({ JOBWATCH_RETENTION: "off" }), Option.none())
      assert.deepStrictEqual(yield* retention({ JOBWATCH_RETENTION: "36h" }), Option.some(Duration.hours(36)))
      const zero = yield* Effect.either(retention({ JOBWATCH_RETENTION: "0s" }))
      assert.isTrue(Either.isLeft(zero) && String(zero.left).includes("JOBWATCH_RETENTION"))
    }))
})

describe("retention: a purged job's waiters and streams", () => {
  it.live("a waiter, a long-poll, a stream and an SSE stream on a job purged meanwhile end with JobNotFound", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const watcher = yield* CompletionWatcher
      const streams = yield* EventStream
      const notifications = yield* Notifications
      const ref = yield* jobs.enqueue({ name: "short-lived", queue: uniqueQueue("gone") })
      yield* jobs.cancel(ref.id)
      const last = (yield* jobs.get(ref.id)).version
      const registered = yield* notifications.subscriberCount
      // from its last version: nothing more will come for it, until it is gone
      const watch = watcher.watch(ref.id, { afterVersion: last })
      const watching = yield* Effect.fork(Effect.either(Stream.runCollect(watch)))
      const polling = yield* Effect.fork(Effect.either(watcher.changes(ref.id, last)))
      const sse = yield* Effect.fork(Stream.runCollect(yield* streams.jobEvents(ref.id, { afterVersion: last })))
      yield* eventually(notifications.subscriberCount, (n) => n === registered + 3)

      // the job is finished: DELETE purges it
      const answer = yield* jobs.delete(ref.id)
      assert.strictEqual(answer.status, "canceled")
      const watched = yield* Fiber.join(watching).pipe(Effect.timeout("10 seconds"))
      assert.isTrue(Either.isLeft(watched) && watched.left._tag === "JobNotFound", String(watched))
      const polled = yield* Fiber.join(polling).pipe(Effect.timeout("10 seconds"))
      assert.isTrue(Either.isLeft(polled) && polled.left._tag === "JobNotFound", String(polled))
      assert.strictEqual((yield* Fiber.join(sse).pipe(Effect.timeout("10 seconds"))).length, 0)
      yield* eventually(notifications.subscriberCount, (n) => n === registered)
      const waited = yield* Effect.either(watcher.waitFor(ref.id).pipe(Effect.timeout("10 seconds")))
      assert.isTrue(Either.isLeft(waited) && waited.left._tag === "JobNotFound")
    }).pipe(onFreshSchema({ refreshInterval: null })), { timeout: 60_000 })
})

/** The `Exit` of one RPC call (NDJSON over HTTP) as `bearer`. */
const rpcExit = (bearer: string, tag: string, payload: unknown) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const body = `${JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] })}\n`
    const response = yield* client.execute(
      HttpClientRequest.post("/rpc").pipe(
        HttpClientRequest.bearerToken(bearer),
        HttpClientRequest.bodyText(body, "application/ndjson")
      )
    )
    const frames = (yield* response.text).split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
    return frames.find((frame) => frame._tag === "Exit")?.exit
  }).pipe(Effect.scoped, Effect.orDie)

describe("retention over HTTP", () => {
  it.live("DELETE of a finished job purges it; a pending one is marked deleted first; an admin purges by filter", () =>
    Effect.gen(function*() {
      const workers = yield* Workers
      const user = yield* token("rita")
      const admin = yield* token("root", ["admin"])
      const queue = uniqueQueue("http-purge")
      const enqueue = (name: string) =>
        Effect.map(raw("POST", "/v1/jobs", { token: user, json: { name, queue } }), (r) => r.body.id as string)
      const purge = (bearer: string, json: unknown) => raw("POST", "/v1/admin/jobs/purge", { token: bearer, json })

      const done = yield* enqueue("done")
      yield* workers.claim("w-http-purge", { queues: [queue] })
      yield* workers.complete(done, { workerId: "w-http-purge", result: { ok: 1 } })
      const purged = yield* raw("DELETE", `/v1/jobs/${done}`, { token: user })
      assert.strictEqual(purged.status, 200)
      assert.deepInclude(purged.body, { id: done, status: "completed", isSuccessful: true, errorMessage: null })
      assert.strictEqual((yield* raw("GET", `/v1/jobs/${done}`, { token: user })).status, 404)
      assert.strictEqual((yield* raw("DELETE", `/v1/jobs/${done}`, { token: user })).status, 404)

      const pending = yield* enqueue("pending")
      const marked = yield* raw("DELETE", `/v1/jobs/${pending}`, { token: user })
      assert.deepInclude(marked.body, { status: "deleted", terminal: true })
      assert.strictEqual((yield* raw("GET", `/v1/jobs/${pending}`, { token: user })).status, 200)
      assert.strictEqual((yield* raw("DELETE", `/v1/jobs/${pending}`, { token: user })).status, 200)
      assert.strictEqual((yield* raw("GET", `/v1/jobs/${pending}`, { token: user })).status, 404)

      // by filter: three canceled, one pending in the queue
      const canceled = [yield* enqueue("c1"), yield* enqueue("c2"), yield* enqueue("c3")]
      for (const id of canceled) yield* raw("POST", `/v1/jobs/${id}/cancel`, { token: user })
      const open = yield* enqueue("open")
      const refused = yield* purge(user, { queue })
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(refused.body._tag, "Forbidden")
      const notFinished = yield* purge(admin, { queue, status: "pending" })
      assert.strictEqual(notFinished.status, 400)
      assert.strictEqual(notFinished.body.field, "status")
      const some = yield* purge(admin, { queue, status: "cancelled", limit: 2 })
      assert.deepStrictEqual(some.body, { purged: 2, more: true })
      const rest = yield* purge(admin, { queue, finishedBefore: new Date(Date.now() + 60_000).toISOString() })
      assert.deepStrictEqual(rest.body, { purged: 1, more: false })
      for (const id of canceled) assert.strictEqual((yield* raw("GET", `/v1/jobs/${id}`, { token: user })).status, 404)
      assert.strictEqual((yield* raw("GET", `/v1/jobs/${open}`, { token: user })).body.status, "pending")

      // the same over RPC
      yield* raw("POST", `/v1/jobs/${open}/cancel`, { token: user })
      const refusedRpc = yield* rpcExit(user, "JobsPurge", { queue })
      assert.strictEqual(refusedRpc?._tag, "Failure")
      assert.include(JSON.stringify(refusedRpc), "Forbidden")
      assert.deepStrictEqual(yield* rpcExit(admin, "JobsPurge", { queue }), {
        _tag: "Success",
        value: { purged: 1, more: false }
      })

      const spec = (yield* raw("GET", "/openapi.json")).body
      const operation = spec.paths["/v1/admin/jobs/purge"].post
      assert.isString(operation.summary)
      assert.property(operation.responses, "403")
      assert.isString(spec.paths["/v1/jobs/{id}"].delete.description)
    }).pipe(Effect.provide(serverLayer()), Effect.scoped), { timeout: 60_000 })
})
