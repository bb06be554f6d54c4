import { assert, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { Repos } from "./support/repos.js"
import { jobIn } from "./support/fixtures.js"
import { itemsOf, listenOn, outcomesOf, pairsOf, settled } from "./support/notifications.js"
import * as TestDb from "./support/TestDb.js"

const TestLayer = Layer.mergeAll(JobWatch.layer, Repos.Default.pipe(Layer.provide(JobWatch.MigrationsLive))).pipe(
  Layer.provideMerge(TestDb.layer())
)

const doorbell = Effect.map(JobWatchConfig, ({ schema }) => `${schema}.doorbell`)

layer(TestLayer, { excludeTestServices: true })("the NOTIFY doorbell", (it) => {
  it.scoped("one enqueue rings once with #,job_id:1", () =>
    Effect.gen(function*() {
      const listening = yield* listenOn(yield* doorbell)
      const ref = yield* (yield* Jobs).enqueue({ name: "ring" })
      // exactly once: everything the enqueue could ring has arrived once the marker sent after it has
      assert.deepStrictEqual(yield* settled(listening), [`#,${ref.id}:1`])
    }))

  it.scoped("a batch rings once per statement with every job's pair", () =>
    Effect.gen(function*() {
      const listening = yield* listenOn(yield* doorbell)
      const refs = yield* (yield* Jobs).enqueueBatch([{ name: "a" }, { name: "b" }, { name: "c" }])
      const payloads = yield* settled(listening)
      assert.strictEqual(payloads.length, 1)
      assert.sameMembers(payloads[0]!.split(","), ["#", ...refs.map((ref) => `${ref.id}:1`)])
    }))

  it.scoped("each transition rings with the new version", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const job = yield* jobIn("claimed")
      const listening = yield* listenOn(yield* doorbell)
      yield* repo.start(job.id)
      yield* repo.complete(job.id, { resultJson: "{}" })
      const payloads = yield* settled(listening)
      assert.deepStrictEqual(payloads.map(itemsOf), [["#", `${job.id}:3`], ["#", `${job.id}:4`]])
      // the terminal one carries its outcome
      assert.deepStrictEqual(payloads.map((p) => outcomesOf(p).map((o) => [o.id, o.version, o.status])), [
        [],
        [[job.id, 4, "completed"]]
      ])
    }))

  it.scoped("a refused transition does not ring", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const job = yield* jobIn("completed")
      const other = yield* jobIn("pending")
      const listening = yield* listenOn(yield* doorbell)
      yield* Effect.either(repo.cancel(job.id))
      // a later doorbell (and the marker after it) proves the refused one would have arrived first had it rung
      yield* repo.cancel(other.id)
      assert.deepStrictEqual((yield* settled(listening)).map(itemsOf), [["#", `${other.id}:2`]])
    }))

  it.scoped("a statement over 8000 bytes of pairs rings in several chunks, each under the limit", () =>
    Effect.gen(function*() {
      const listening = yield* listenOn(yield* doorbell)
      const refs = yield* (yield* Jobs).enqueueBatch(Array.from({ length: 600 }, (_, i) => ({ name: `n${i}` })))
      const payloads = yield* settled(listening)
      assert.isAbove(payloads.length, 1)
      for (const payload of payloads) assert.isBelow(Buffer.byteLength(payload), 8000)
      const pairs = pairsOf(payloads)
      assert.strictEqual(pairs.size, 600)
      for (const ref of refs) assert.strictEqual(pairs.get(ref.id), 1)
    }))

  it.scoped("a statement touching more than 3,000 jobs rings the reconcile marker", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      const listening = yield* listenOn(yield* doorbell)
      yield* sql`
        WITH j AS (
          INSERT INTO ${sql(`${schema}.jobs`)} (id, queue, name, payload, status, scheduled_at)
          SELECT ${sql.unsafe(`"${schema}".uuid_v7()`)}, 'bulk', 'bulk', 'null', 'pending', now()
          FROM generate_series(1, 3001)
          RETURNING id
        )
        INSERT INTO ${sql(`${schema}.job_events`)} (job_id, version, type, status)
        SELECT id, 1, 'job.status.changed', 'pending' FROM j`
      assert.deepStrictEqual(yield* settled(listening), ["*"])
    }))

  it.scoped("a terminal transition carries its outcome in its one doorbell; a large one flags the job instead", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const { schema } = yield* JobWatchConfig
      const small = yield* jobIn("running")
      const failing = yield* jobIn("running")
      const large = yield* jobIn("running")
      const outcomes = yield* listenOn(`${schema}.outcome`)
      const listening = yield* listenOn(yield* doorbell)
      yield* repo.complete(small.id, { resultJson: JSON.stringify({ url: "s3://a" }) })
      yield* repo.fail(failing.id, { code: "E42", error: "no luck" })
      yield* repo.complete(large.id, { resultJson: JSON.stringify("x".repeat(5000)) })
      const payloads = yield* settled(listening)
      assert.lengthOf(payloads, 3)
      // one NOTIFY per statement: nothing on the older shape's outcome channel
      assert.deepStrictEqual(yield* settled(outcomes), [])
      assert.deepStrictEqual(payloads.map(itemsOf), [
        ["#", `${small.id}:4`],
        ["#", `${failing.id}:4`],
        ["#", `${large.id}:4`, `!${large.id}`]
      ])
      const items = payloads.flatMap(outcomesOf)
      assert.deepStrictEqual(items.map((o) => [o.id, o.version, o.status]), [
        [small.id, 4, "completed"],
        [failing.id, 4, "failed"]
      ])
      assert.deepStrictEqual(items[0]!.result, { url: "s3://a" })
      assert.deepStrictEqual([items[1]!.errorCode, items[1]!.errorMessage], ["E42", "no luck"])
      for (const payload of payloads) assert.isBelow(Buffer.byteLength(payload), 8000)
    }))

  it.scoped("a single transition (its own path in the trigger) notifies exactly as a statement of many does", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const [alone, first, second, large] = yield* Effect.all([
        jobIn("running"),
        jobIn("running"),
        jobIn("running"),
        jobIn("running")
      ])
      const listening = yield* listenOn(yield* doorbell)
      const result = JSON.stringify({ pages: [1, 2], note: "é\"\\" })
      yield* repo.complete(alone!.id, { resultJson: result })
      yield* repo.completeMany(undefined, [
        ...[first!, second!].map((job) => ({ id: job.id, resultJson: result, message: null })),
        { id: large!.id, resultJson: JSON.stringify("x".repeat(5000)), message: null }
      ])
      const payloads = yield* settled(listening)
      assert.lengthOf(payloads, 2)
      assert.deepStrictEqual(itemsOf(payloads[0]!), ["#", `${alone!.id}:4`])
      assert.sameMembers(itemsOf(payloads[1]!), ["#", `${first!.id}:4`, `${second!.id}:4`, `${large!.id}:4`, `!${large!.id}`])
      const [single, batch] = payloads.map(outcomesOf)
      assert.strictEqual(single!.length, 1)
      assert.strictEqual(batch!.length, 2)
      // the same item, field for field, but for the job's id and the event's time (a time either way; PostgreSQL
      // writes as many fractional digits as it needs)
      const shape = (item: Record<string, unknown>) => ({
        ...item,
        id: "-",
        at: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$/.test(String(item.at)) ? "a time" : item.at
      })
      for (const item of batch!) assert.deepStrictEqual(shape(single![0]!), shape(item))
      assert.deepStrictEqual(single![0]!.result, JSON.parse(result))
    }))

  it.scoped("outcomes of one statement are chunked under 8000 bytes, whatever their sizes up to the limit", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      const outcomes = yield* listenOn(yield* doorbell)
      // 200 finished jobs written by one statement, results from none to 3,600 bytes (all fit an item)
      const rows = yield* sql<{ id: string }>`
        WITH j AS (
          INSERT INTO ${sql(`${schema}.jobs`)} (id, queue, name, payload, status, scheduled_at, result)
          SELECT ${sql.unsafe(`"${schema}".uuid_v7()`)}, 'bulk', 'bulk', 'null', 'completed', now(),
            to_jsonb(repeat('r', (g * 17) % 3600))
          FROM generate_series(1, 200) AS g
          RETURNING id
        ), e AS (
          INSERT INTO ${sql(`${schema}.job_events`)} (job_id, version, type, status)
          SELECT id, 1, 'job.status.changed', 'completed' FROM j
        )
        SELECT id FROM j`
      const sent = yield* settled(outcomes)
      assert.isAbove(sent.length, 1)
      for (const payload of sent) assert.isBelow(Buffer.byteLength(payload), 8000)
      const ids = sent.flatMap((p) => outcomesOf(p).map((o) => o.id))
      assert.sameMembers(ids, rows.map((r) => r.id))
      // every outcome rides with its job's pair, and no job is flagged
      for (const payload of sent) {
        const items = itemsOf(payload)
        assert.sameMembers(outcomesOf(payload).map((o) => `${String(o.id)}:1`), items.slice(1))
      }
    }))
})
