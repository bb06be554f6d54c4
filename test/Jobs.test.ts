import { assert, describe, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Either, Layer } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import * as JobWatch from "../src/JobWatch.js"
import type { EnqueueOptions, ListOptions } from "../src/Jobs.js"
import { Jobs } from "../src/Jobs.js"
import { Repos } from "./support/repos.js"
import { jobIn, uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"

const TestLayer = Layer.mergeAll(JobWatch.layer, Repos.Default.pipe(Layer.provide(JobWatch.MigrationsLive))).pipe(
  Layer.provideMerge(TestDb.layer({ maxPayloadBytes: 1024 * 1024 }))
)

/** Rows in both tables: a refused call must leave them unchanged. */
const counts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const [row] = yield* sql<{ jobs: number; events: number }>`
    SELECT (SELECT count(*)::int FROM ${sql(`${schema}.jobs`)}) AS jobs,
           (SELECT count(*)::int FROM ${sql(`${schema}.job_events`)}) AS events`
  return row!
})

/** Runs `effect`, expects it to fail with `tag` on `field`, and checks that nothing was written. */
const refuses = <A, E extends { readonly _tag: string; readonly field?: string }, R>(
  effect: Effect.Effect<A, E, R>,
  tag: string,
  field: string
) =>
  Effect.gen(function*() {
    const before = yield* counts
    const result = yield* Effect.either(effect)
    const after = yield* counts
    assert.deepStrictEqual(after, before, "nothing may be written")
    if (Either.isRight(result)) return assert.fail(`expected ${tag} on ${field}, got success`)
    assert.strictEqual(result.left._tag, tag)
    assert.strictEqual(result.left.field, field)
    return result.left
  })

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

layer(TestLayer, { excludeTestServices: true })("Jobs", (it) => {
  describe("enqueue", () => {
    it.effect("answers a reference and stores the whole job with its first event", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const ref = yield* jobs.enqueue({ name: "render", payload: { w: 640, tags: ["a"] }, priority: 5, owner: "ann" })
        assert.match(ref.id, uuidV7)
        assert.strictEqual(ref.name, "render")
        assert.strictEqual(ref.queue, "default")
        assert.strictEqual(ref.status, "pending")
        assert.isFalse(ref.existing)
        const info = yield* jobs.get(ref.id)
        assert.deepStrictEqual(info.payload, { w: 640, tags: ["a"] })
        assert.strictEqual(info.priority, 5)
        assert.strictEqual(info.owner, "ann")
        assert.strictEqual(info.attempt, 0)
        assert.strictEqual(info.maxAttempts, 1)
        assert.strictEqual(info.version, 1)
        assert.isFalse(info.terminal)
        assert.isNumber(info.queuePosition)
        const status = yield* jobs.status(ref.id)
        assert.deepStrictEqual(
          { status: status.status, version: status.version, terminal: status.terminal },
          { status: "pending", version: 1, terminal: false }
        )
        assert.isTrue(yield* jobs.exists(ref.id))
      }))

    it.effect("stores JSON null, scalars and unicode payloads as given", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        for (const payload of [null, 0, "text", true, [1, "二", { "é": "😀" }]]) {
          const ref = yield* jobs.enqueue({ name: "p", payload })
          assert.deepStrictEqual((yield* jobs.get(ref.id)).payload, payload)
        }
        const omitted = yield* jobs.enqueue({ name: "no payload" })
        assert.isNull((yield* jobs.get(omitted.id)).payload)
      }))

    it.effect("a future runAt or a delay makes the job scheduled, a past runAt pending", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const runAt = new Date(Date.now() + 3_600_000)
        const at = yield* jobs.enqueue({ name: "later", runAt })
        assert.strictEqual(at.status, "scheduled")
        assert.strictEqual(at.scheduledAt?.epochMillis, runAt.getTime())
        const delayed = yield* jobs.enqueue({ name: "later", delay: "10 minutes" })
        assert.strictEqual(delayed.status, "scheduled")
        assert.isAbove(delayed.scheduledAt?.epochMillis ?? 0, Date.now() + 9 * 60_000)
        const past = yield* jobs.enqueue({ name: "now", runAt: "2020-01-01T00:00:00Z" })
        assert.strictEqual(past.status, "pending")
      }))

    it.effect("a payload of exactly the limit is accepted", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const payload = "x".repeat(1024 * 1024 - 2) // the JSON text is the string plus its two quotes
        const ref = yield* jobs.enqueue({ name: "big", payload })
        assert.strictEqual(((yield* jobs.get(ref.id)).payload as string).length, payload.length)
      }))
  })

  describe("enqueueBatch", () => {
    it.effect("enqueues 1,000 jobs in input order, each with its first event", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("batch")
        const before = yield* counts
        const refs = yield* jobs.enqueueBatch(
          Array.from({ length: 1000 }, (_, i) => ({ name: `job-${i}`, queue, payload: { i }, priority: i % 3 }))
        )
        const after = yield* counts
        assert.strictEqual(refs.length, 1000)
        assert.deepStrictEqual(refs.map((ref) => ref.name), Array.from({ length: 1000 }, (_, i) => `job-${i}`))
        assert.strictEqual(new Set(refs.map((ref) => ref.id)).size, 1000)
        assert.strictEqual(after.jobs - before.jobs, 1000)
        assert.strictEqual(after.events - before.events, 1000)
        const page = yield* jobs.list({ queue, limit: 1 })
        assert.strictEqual(page.pagination.total, 1000)
      }))

    it.effect("refuses an empty batch and one over the maximum", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        yield* refuses(jobs.enqueueBatch([]), "InvalidInput", "jobs")
        yield* refuses(
          jobs.enqueueBatch(Array.from({ length: 1001 }, () => ({ name: "x" }))),
          "InvalidInput",
          "jobs"
        )
      }))

    it.effect("one bad job refuses the whole batch and names it", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const error = yield* refuses(
          jobs.enqueueBatch([{ name: "ok" }, { name: "ok" }, { name: "" }, { name: "ok" }]),
          "InvalidInput",
          "jobs[2].name"
        )
        assert.match(error.message, /^jobs\[2\]\.name /)
        yield* refuses(
          jobs.enqueueBatch([{ name: "ok" }, { name: "big", payload: "x".repeat(1024 * 1024) }]),
          "PayloadTooLarge",
          "jobs[1].payload"
        )
      }))
  })

  describe("idempotency key", () => {
    it.effect("the same owner and key answer the existing job; another owner gets its own", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const key = `key-${uniqueQueue()}`
        const first = yield* jobs.enqueue({ name: "charge", owner: "ann", idempotencyKey: key })
        const before = yield* counts
        const again = yield* jobs.enqueue({ name: "charge", owner: "ann", idempotencyKey: key })
        assert.deepStrictEqual(yield* counts, before)
        assert.strictEqual(again.id, first.id)
        assert.isTrue(again.existing)
        const other = yield* jobs.enqueue({ name: "charge", owner: "bob", idempotencyKey: key })
        assert.notStrictEqual(other.id, first.id)
        assert.isFalse(other.existing)
        const anonymous = yield* jobs.enqueue({ name: "charge", idempotencyKey: key })
        const anonymousAgain = yield* jobs.enqueue({ name: "charge", idempotencyKey: key })
        assert.strictEqual(anonymousAgain.id, anonymous.id)
      }))

    it.effect("repeats inside one batch and across a batch answer one job", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const key = `key-${uniqueQueue()}`
        const existing = yield* jobs.enqueue({ name: "a", idempotencyKey: `${key}-old` })
        const refs = yield* jobs.enqueueBatch([
          { name: "a", idempotencyKey: key },
          { name: "b" },
          { name: "a", idempotencyKey: key },
          { name: "c", idempotencyKey: `${key}-old` }
        ])
        assert.strictEqual(refs[0]!.id, refs[2]!.id)
        assert.isFalse(refs[0]!.existing)
        assert.isTrue(refs[2]!.existing)
        assert.strictEqual(refs[3]!.id, existing.id)
        assert.isTrue(refs[3]!.existing)
      }))

    it.effect("20 concurrent enqueues with one key create exactly one job", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const key = `key-${uniqueQueue()}`
        const before = yield* counts
        const refs = yield* Effect.all(
          Array.from({ length: 20 }, () => jobs.enqueue({ name: "once", owner: "ann", idempotencyKey: key })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(refs.map((ref) => ref.id)).size, 1)
        assert.strictEqual(refs.filter((ref) => !ref.existing).length, 1)
        assert.strictEqual((yield* counts).jobs - before.jobs, 1)
      }))
  })

  describe("list", () => {
    it.effect("pages carry total and pages; the keyset cursor walks every job once, newest first", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("list")
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 25 }, (_, i) => ({ name: `n${i}`, queue })))
        const newestFirst = refs.map((ref) => ref.id).reverse()
        const page1 = yield* jobs.list({ queue, limit: 10 })
        assert.deepStrictEqual(page1.pagination, { total: 25, page: 1, limit: 10, pages: 3 })
        assert.deepStrictEqual(page1.jobs.map((job) => job.id), newestFirst.slice(0, 10))
        const page3 = yield* jobs.list({ queue, limit: 10, page: 3 })
        assert.deepStrictEqual(page3.jobs.map((job) => job.id), newestFirst.slice(20))
        const page4 = yield* jobs.list({ queue, limit: 10, page: 4 })
        assert.strictEqual(page4.jobs.length, 0)
        assert.strictEqual(page4.pagination.total, 25)

        const walked: Array<string> = []
        let cursor: string | undefined = undefined
        for (let i = 0; i < 10; i++) {
          const page: { jobs: ReadonlyArray<{ id: string }>; nextCursor: string | null } = yield* jobs.listByCursor({
            queue,
            limit: 7,
            cursor
          })
          walked.push(...page.jobs.map((job) => job.id))
          if (page.nextCursor === null) break
          cursor = page.nextCursor
        }
        assert.deepStrictEqual(walked, newestFirst)
      }))

    it.effect("filters by status, canonical or alias, by name and by owner", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("filter")
        const pending = yield* jobIn("pending", { queue })
        const running = yield* jobIn("running", { queue })
        const claimed = yield* jobIn("claimed", { queue })
        const scheduled = yield* jobIn("scheduled", { queue })
        const canceled = yield* jobIn("canceled", { queue })
        const owned = yield* jobs.enqueue({ name: "mine", queue, owner: "zed" })
        const ids = (options: ListOptions) =>
          jobs.list({ queue, limit: 100, ...options }).pipe(Effect.map((page) => page.jobs.map((job) => job.id).sort()))
        const sorted = (...xs: ReadonlyArray<{ id: string }>) => xs.map((x) => x.id).sort()
        assert.deepStrictEqual(yield* ids({ status: "queued" }), sorted(pending, owned))
        assert.deepStrictEqual(yield* ids({ status: "waiting" }), sorted(pending, owned))
        assert.deepStrictEqual(yield* ids({ status: "active" }), sorted(running, claimed))
        assert.deepStrictEqual(yield* ids({ status: "IN_PROGRESS" }), sorted(running, claimed))
        assert.deepStrictEqual(yield* ids({ status: "delayed" }), sorted(scheduled))
        assert.deepStrictEqual(yield* ids({ status: "cancelled" }), sorted(canceled))
        assert.deepStrictEqual(yield* ids({ status: "canceled,scheduled" }), sorted(canceled, scheduled))
        assert.deepStrictEqual(yield* ids({ status: ["running", "claimed"] }), sorted(running, claimed))
        assert.deepStrictEqual(yield* ids({ name: "mine" }), sorted(owned))
        assert.deepStrictEqual(yield* ids({ owner: "zed" }), sorted(owned))
      }))
  })

  describe("owners, cancel and delete", () => {
    it.effect("another owner's job is not found", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const ref = yield* jobs.enqueue({ name: "private", owner: "ann" })
        assert.strictEqual((yield* jobs.get(ref.id, { owner: "ann" })).id, ref.id)
        for (const attempt of [jobs.get(ref.id, { owner: "bob" }), jobs.cancel(ref.id, { owner: "bob" })]) {
          const result = yield* Effect.either(attempt)
          assert.isTrue(Either.isLeft(result) && result.left._tag === "JobNotFound")
        }
        assert.isFalse(yield* jobs.exists(ref.id, { owner: "bob" }))
        assert.strictEqual((yield* jobs.get(ref.id)).status, "pending")
      }))

    it.effect("cancel and delete move the job; a terminal job refuses a cancel, and a delete purges it", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const ref = yield* jobs.enqueue({ name: "c" })
        yield* jobs.cancel(ref.id)
        const canceled = yield* jobs.get(ref.id)
        assert.strictEqual(canceled.status, "canceled")
        assert.isTrue(canceled.terminal)
        const again = yield* Effect.either(jobs.cancel(ref.id))
        if (Either.isLeft(again) && again.left._tag === "InvalidTransition") {
          assert.strictEqual(again.left.from, "canceled")
          assert.strictEqual(again.left.to, "canceled")
        } else assert.fail("expected InvalidTransition")
        // a finished job is purged: answered as it was, then gone
        assert.strictEqual((yield* jobs.delete(ref.id)).status, "canceled")
        assert.isFalse(yield* jobs.exists(ref.id))
        const other = yield* jobs.enqueue({ name: "d" })
        yield* jobs.delete(other.id)
        assert.strictEqual((yield* jobs.get(other.id)).status, "deleted")
      }))

    it.effect("an unknown id is JobNotFound everywhere", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const id = "0190f2b4-5f5e-7000-8000-000000000000"
        const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
          jobs.get(id),
          jobs.status(id),
          jobs.cancel(id),
          jobs.delete(id)
        ]
        for (const attempt of attempts) {
          const result = yield* Effect.either(attempt)
          assert.isTrue(Either.isLeft(result) && result.left._tag === "JobNotFound")
        }
        assert.isFalse(yield* jobs.exists(id))
      }))
  })

  describe("bad input gets its typed error and writes nothing", () => {
    const badJobs: ReadonlyArray<readonly [string, EnqueueOptions, string, string]> = [
      ["empty name", { name: "" }, "InvalidInput", "name"],
      ["blank name", { name: "   " }, "InvalidInput", "name"],
      ["201-character name", { name: "x".repeat(201) }, "InvalidInput", "name"],
      ["name not a string", { name: 42 as unknown as string }, "InvalidInput", "name"],
      ["missing name", {} as EnqueueOptions, "InvalidInput", "name"],
      ["payload over 1 MiB", { name: "x", payload: "x".repeat(1024 * 1024) }, "PayloadTooLarge", "payload"],
      ["payload with multi-byte text over 1 MiB", { name: "x", payload: "é".repeat(600_000) }, "PayloadTooLarge", "payload"],
      ["payload holding \\u0000", { name: "x", payload: { s: "a\u0000b" } }, "InvalidInput", "payload"],
      ["payload not JSON", { name: "x", payload: { n: 10n } }, "InvalidInput", "payload"],
      ["fractional priority", { name: "x", priority: 1.5 }, "InvalidInput", "priority"],
      ["priority as a string", { name: "x", priority: "1" as unknown as number }, "InvalidInput", "priority"],
      ["priority beyond int4", { name: "x", priority: 2 ** 31 }, "InvalidInput", "priority"],
      ["maxAttempts 0", { name: "x", maxAttempts: 0 }, "InvalidInput", "maxAttempts"],
      ["runAt not a date", { name: "x", runAt: "tomorrow" }, "InvalidInput", "runAt"],
      ["runAt and delay", { name: "x", runAt: new Date(), delay: "1 second" }, "InvalidInput", "delay"],
      ["negative delay", { name: "x", delay: -5 }, "InvalidInput", "delay"],
      ["timeout not a duration", { name: "x", timeout: "soon" as unknown as number }, "InvalidInput", "timeout"],
      ["empty queue", { name: "x", queue: "" }, "InvalidInput", "queue"],
      ["201-character idempotency key", { name: "x", idempotencyKey: "k".repeat(201) }, "InvalidInput", "idempotencyKey"]
    ]
    for (const [label, options, tag, field] of badJobs) {
      it.effect(`enqueue: ${label}`, () =>
        Effect.gen(function*() {
          const jobs = yield* Jobs
          const error = yield* refuses(jobs.enqueue(options), tag, field)
          assert.include(error.message, field)
        }))
    }

    it.effect("a bad UUID, for every operation taking an id", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        for (const id of ["nope", "", "0190f2b4-5f5e-7000-8000-00000000000", "0190f2b4-5f5e-7000-8000-00000000000z"]) {
          yield* refuses(jobs.get(id), "InvalidInput", "id")
          yield* refuses(jobs.status(id), "InvalidInput", "id")
          yield* refuses(jobs.exists(id), "InvalidInput", "id")
          yield* refuses(jobs.cancel(id), "InvalidInput", "id")
          yield* refuses(jobs.delete(id), "InvalidInput", "id")
        }
      }))

    const badLists: ReadonlyArray<readonly [string, ListOptions, string]> = [
      ["unknown status", { status: "exploded" }, "status"],
      ["one unknown status among good ones", { status: "pending,nope" }, "status"],
      ["page 0", { page: 0 }, "page"],
      ["fractional page", { page: 1.5 }, "page"],
      ["limit 0", { limit: 0 }, "limit"],
      ["limit over the maximum", { limit: 101 }, "limit"]
    ]
    for (const [label, options, field] of badLists) {
      it.effect(`list: ${label}`, () =>
        Effect.gen(function*() {
          const jobs = yield* Jobs
          const error = yield* refuses(jobs.list(options), "InvalidInput", field)
          assert.include(error.message, field)
        }))
    }

    it.effect("listByCursor: a cursor this API never returned", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        yield* refuses(jobs.listByCursor({ cursor: "garbage!" }), "InvalidInput", "cursor")
        yield* refuses(jobs.listByCursor({ limit: 1000 }), "InvalidInput", "limit")
      }))
  })
})
