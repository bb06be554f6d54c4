import { assert, describe, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { DateTime, Duration, Effect, Either, Layer, Schema } from "effect"
import { EnqueueBatchBody } from "../src/Domain/Requests.js"
import { JobWatchConfig } from "../src/Config.js"
import * as JobWatch from "../src/JobWatch.js"
import type { EnqueueOptions } from "../src/Jobs.js"
import { Jobs } from "../src/Jobs.js"
import { uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"

// The batch enqueue's one statement (sql/functions/job_enqueue.sql, fed one array per column) and its answer, built
// from that statement's one row: every job and its first event in one transaction, or nothing; the plain-job shortcut
// past the schema accepts exactly what the schema accepts.
const TestLayer = JobWatch.layer.pipe(Layer.provideMerge(TestDb.layer()))

const tables = Effect.gen(function*() {
  const { schema } = yield* JobWatchConfig
  return { jobs: `${schema}.jobs`, events: `${schema}.job_events` }
})

layer(TestLayer, { excludeTestServices: true })("enqueue in one statement", (it) => {
  it.effect("a 1,000-job batch writes 1,000 jobs and their 1,000 first events in one transaction", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const sql = yield* SqlClient.SqlClient
      const t = yield* tables
      const queue = uniqueQueue("one-tx")
      const refs = yield* jobs.enqueueBatch(Array.from({ length: 1000 }, (_, i) => ({ name: `j${i}`, queue, payload: { i } })))
      const [row] = yield* sql<{ jobs: number; events: number; txs: number; created: number; versions: number }>`
        SELECT count(DISTINCT j.id)::int AS jobs, count(e.*)::int AS events, count(DISTINCT e.tx)::int AS txs,
          count(DISTINCT j.created_at)::int AS created, count(DISTINCT e.version)::int AS versions
        FROM ${sql(t.jobs)} j LEFT JOIN ${sql(t.events)} e ON e.job_id = j.id
        WHERE j.queue = ${queue}`
      assert.deepStrictEqual(row, { jobs: 1000, events: 1000, txs: 1, created: 1, versions: 1 })
      const [event] = yield* sql<{ type: string; status: string }>`
        SELECT type, status FROM ${sql(t.events)} WHERE job_id = ${refs[0]!.id}`
      assert.deepStrictEqual(event, { type: "job.status.changed", status: "pending" })
    }))

  it.effect("a batch refused anywhere writes nothing", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const sql = yield* SqlClient.SqlClient
      const t = yield* tables
      const queue = uniqueQueue("refused")
      const batch: Array<EnqueueOptions> = Array.from({ length: 1000 }, (_, i) => ({ name: `j${i}`, queue }))
      batch[999] = { name: "last", queue, priority: 2 ** 31 }
      const refused = yield* Effect.either(jobs.enqueueBatch(batch))
      assert.isTrue(Either.isLeft(refused))
      if (Either.isLeft(refused)) assert.strictEqual(refused.left.field, "jobs[999].priority")
      // a job with a callback into a private network is refused after the others were checked: still nothing
      batch[999] = { name: "last", queue, webhookUrl: "http://127.0.0.1:1/hook" }
      const target = yield* Effect.either(jobs.enqueueBatch(batch))
      assert.isTrue(Either.isLeft(target))
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(t.jobs)} WHERE queue = ${queue}`
      assert.strictEqual(row!.n, 0)
    }))

  it.effect("the answer's status, due time and creation time are those stored, for pending, delayed and dated jobs", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const queue = uniqueQueue("answer")
      const refs = yield* jobs.enqueueBatch([
        { name: "now", queue },
        { name: "delayed", queue, delay: Duration.millis(60_000.5) },
        { name: "zero", queue, delay: 0 },
        { name: "dated", queue, runAt: new Date(Date.now() + 3_600_123) },
        { name: "past", queue, runAt: "2001-02-03T04:05:06.789Z" }
      ])
      assert.deepStrictEqual(refs.map((ref) => ref.status), ["pending", "scheduled", "pending", "scheduled", "pending"])
      for (const ref of refs) {
        const info = yield* jobs.get(ref.id)
        assert.strictEqual(ref.status, info.status, ref.name)
        assert.strictEqual(DateTime.toEpochMillis(ref.createdAt), DateTime.toEpochMillis(info.createdAt), ref.name)
        assert.deepStrictEqual(
          ref.scheduledAt === null ? null : DateTime.toEpochMillis(ref.scheduledAt),
          info.scheduledAt === null ? null : DateTime.toEpochMillis(info.scheduledAt),
          ref.name
        )
      }
    }))

  it.effect("idempotency keys in one statement: a taken key answers its job, new keys create, in input order", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const queue = uniqueQueue("keys")
      const [first] = yield* jobs.enqueueBatch([{ name: "a", queue, idempotencyKey: `${queue}-a`, owner: "kim" }])
      const refs = yield* jobs.enqueueBatch([
        { name: "b", queue, idempotencyKey: `${queue}-b`, owner: "kim" },
        { name: "a2", queue, idempotencyKey: `${queue}-a`, owner: "kim" },
        { name: "c", queue, owner: "kim" },
        { name: "a3", queue, idempotencyKey: `${queue}-a`, owner: "lee" }
      ])
      assert.deepStrictEqual(refs.map((ref) => ref.existing), [false, true, false, false])
      assert.strictEqual(refs[1]!.id, first!.id)
      assert.strictEqual(refs[1]!.name, "a")
      assert.strictEqual((yield* jobs.list({ queue })).pagination.total, 4)
    }))

  it.effect("texts and payloads that need quoting in an array literal are stored as given", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const queue = uniqueQueue("quoting")
      const names = ["NULL", "null", "a,b", "{x}", "say \"hi\"", "back\\slash", " lead", "é ✓ 𝄞", "tab\tnew\nline"]
      const refs = yield* jobs.enqueueBatch(names.map((name, i) => ({
        name,
        queue,
        idempotencyKey: `${name}-${i}`,
        payload: { name, nested: ["\"", "\\", "{", "}", ","] }
      })))
      for (const [i, ref] of refs.entries()) {
        const info = yield* jobs.get(ref.id)
        assert.strictEqual(info.name, names[i])
        assert.strictEqual(info.idempotencyKey, `${names[i]}-${i}`)
        assert.deepStrictEqual(info.payload, { name: names[i], nested: ["\"", "\\", "{", "}", ","] })
      }
    }))

  it.effect("a batch the HTTP API's schema decoded is enqueued as decoded, still checked against the configuration", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const sql = yield* SqlClient.SqlClient
      const t = yield* tables
      const queue = uniqueQueue("decoded")
      const body = yield* Schema.decodeUnknown(EnqueueBatchBody)({
        jobs: [
          { name: "a", queue, delaySeconds: 30, timeoutSeconds: 2.5, maxAttempts: 4, priority: -3 },
          { name: "b", queue, runAt: "2999-01-01T00:00:00.000Z", backoff: { delaySeconds: 2, maxDelaySeconds: 9, multiplier: 3 } }
        ]
      })
      const refs = yield* jobs.enqueueBatchDecoded(body.jobs.map((job) => ({ ...job, owner: "ivy" })))
      assert.deepStrictEqual(refs.map((ref) => ref.status), ["scheduled", "scheduled"])
      const rows = yield* sql<{ owner: string; timeout: number; attempts: number; priority: number; base: number; max: number; mult: number }>`
        SELECT owner, timeout_ms::int AS timeout, max_attempts AS attempts, priority, backoff_base_ms::int AS base,
          backoff_max_ms::int AS max, backoff_multiplier AS mult
        FROM ${sql(t.jobs)} WHERE queue = ${queue} ORDER BY name`
      assert.deepStrictEqual(rows.map((row) => ({ ...row })), [
        { owner: "ivy", timeout: 2500, attempts: 4, priority: -3, base: 1000, max: 3_600_000, mult: 2 },
        { owner: "ivy", timeout: null as unknown as number, attempts: 1, priority: 0, base: 2000, max: 9000, mult: 3 }
      ])
      const b = (yield* jobs.get(refs[1]!.id)).scheduledAt
      assert.strictEqual(b === null ? null : DateTime.formatIso(b), "2999-01-01T00:00:00.000Z")
      // the configuration's checks still run: a payload over the limit, a secret that is not one
      const big = yield* Effect.either(jobs.enqueueBatchDecoded([{ name: "big", queue, payload: "x".repeat(2 * 1024 * 1024) }]))
      assert.isTrue(Either.isLeft(big) && big.left._tag === "PayloadTooLarge")
      const secret = yield* Effect.either(
        jobs.enqueueBatchDecoded([{ name: "s", queue, webhookUrl: "https://example.com/h", webhookSecret: "whsec_x" }])
      )
      assert.isTrue(Either.isLeft(secret) && secret.left._tag === "InvalidInput")
    }))

  describe("the plain-job shortcut accepts and refuses what the schema does", () => {
    const cases: ReadonlyArray<readonly [string, EnqueueOptions, string | undefined]> = [
      ["blank name", { name: "   " }, "jobs[0].name"],
      ["empty queue", { name: "n", queue: "" }, "jobs[0].queue"],
      ["long key", { name: "n", idempotencyKey: "k".repeat(201) }, "jobs[0].idempotencyKey"],
      ["NUL in a name", { name: "a\u0000b" }, "jobs[0].name"],
      ["fractional priority", { name: "n", priority: 1.5 }, "jobs[0].priority"],
      ["priority past int4", { name: "n", priority: -(2 ** 31) }, "jobs[0].priority"],
      ["no attempts", { name: "n", maxAttempts: 0 }, "jobs[0].maxAttempts"],
      ["a name that is not text", { name: 5 as unknown as string }, "jobs[0].name"],
      ["no name", { queue: "q" } as unknown as EnqueueOptions, "jobs[0].name"],
      ["the largest priority", { name: "n", priority: 2 ** 31 - 1, maxAttempts: 1000 }, undefined],
      ["an unknown field (ignored, as the schema does)", { name: "n", colour: "red" } as EnqueueOptions, undefined],
      ["undefined fields", { name: "n", queue: undefined, priority: undefined }, undefined]
    ]
    for (const [title, job, field] of cases) {
      it.effect(title, () =>
        Effect.gen(function*() {
          const result = yield* Effect.either((yield* Jobs).enqueueBatch([job]))
          if (field === undefined) return assert.isTrue(Either.isRight(result), String(Either.isLeft(result) && result.left.message))
          assert.isTrue(Either.isLeft(result))
          if (Either.isLeft(result)) {
            assert.strictEqual(result.left._tag, "InvalidInput")
            assert.strictEqual(result.left.field, field)
          }
        }))
    }
  })
})
