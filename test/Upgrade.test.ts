import { assert, describe, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import * as Migrations from "../src/Database/Migrations.js"
import * as JobWatch from "../src/JobWatch.js"
import { Workers } from "../src/Workers.js"
import * as TestDb from "./support/TestDb.js"

const [pendingId, runningId, completedId] = [
  "01900000-0000-7000-8000-000000000001",
  "01900000-0000-7000-8000-000000000002",
  "01900000-0000-7000-8000-000000000003"
]

/**
 * A database as the releases before the repeatable files left it: versioned migrations 0001–0012 applied and
 * recorded in the migrations table of that time (its primary key on `id`), and jobs written by that code: inserted
 * with their first events by the statement of the time, claimed by its claim statement, started through 0010's
 * `job_transition`, completed through 0011's `job_complete_many`.
 */
const oldDatabase = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const s = `"${schema}"`
  const versioned = (yield* Migrations.load()).filter((m) => m.id <= 12)
  yield* Effect.gen(function*() {
    yield* sql.unsafe(`CREATE SCHEMA ${s}`)
    yield* sql.unsafe(`CREATE TABLE ${s}.jobwatch_migrations (
      id integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    for (const m of versioned) {
      yield* sql.unsafe(`SET LOCAL search_path TO ${s}`)
      yield* sql.unsafe(m.sql)
      yield* sql.unsafe(`INSERT INTO ${s}.jobwatch_migrations (id, name, checksum) VALUES ($1, $2, $3)`, [
        m.id,
        m.name,
        m.checksum
      ])
    }
    yield* sql.unsafe(`SET LOCAL search_path TO ${s}`)
    // the insert of the time: jobs and their first events in one statement
    yield* sql.unsafe(`WITH ins AS (
        INSERT INTO jobs (id, queue, name, payload, status, max_attempts, scheduled_at, backoff_base_ms, backoff_max_ms,
          backoff_multiplier)
        SELECT id::uuid, 'old', 'legacy', '{"n":1}', 'pending', 2, now(), 1000, 3600000, 2
        FROM unnest($1::text[]) AS id
        RETURNING id, status
      )
      INSERT INTO job_events (job_id, version, id, type, status) SELECT id, 1, uuid_v7(), 'job.status.changed', status FROM ins`,
      [[pendingId, runningId, completedId]])
    // the claim of the time, by worker "w-old"
    yield* sql.unsafe(`INSERT INTO workers (id, queues, heartbeat_interval_ms, lease_ms, registered_at, last_seen_at)
      VALUES ('w-old', '{old}', 60000, 90000, now(), now())`)
    yield* sql.unsafe(`WITH upd AS (
        UPDATE jobs j SET status = 'claimed', version = j.version + 1, updated_at = now(), attempt = j.attempt + 1,
          worker_id = 'w-old', lease_expires_at = now() + interval '1 hour', claimed_at = now()
        WHERE j.id = ANY($1::uuid[]) RETURNING j.*
      )
      INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, attempt)
      SELECT id, version, 'job.status.changed', status, 'pending', progress_percent, progress_percent, attempt FROM upd`,
      [[runningId, completedId]])
    yield* sql.unsafe(`SELECT job_transition($1::uuid, 'start', 'running', '{claimed}', NULL, 'w-old', NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL)`, [runningId])
    yield* sql.unsafe(`SELECT job_complete_many('w-old', ARRAY[$1::uuid], ARRAY['{"done":true}'], ARRAY[NULL],
      '{claimed,running}')`, [completedId])
  }).pipe(sql.withTransaction)
})

/** The jobs and events of the old database as they are, to compare after the upgrade. */
const snapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const jobs = yield* sql.unsafe<{ id: string; status: string; version: number; result: unknown }>(
    `SELECT id, status, version, result FROM "${schema}".jobs ORDER BY id`
  )
  const events = yield* sql.unsafe<{ jobId: string; version: number; id: string; status: string }>(
    `SELECT job_id AS "jobId", version, id, status FROM "${schema}".job_events ORDER BY job_id, version`
  )
  return { jobs, events }
})

const versionsOf = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const rows = yield* sql.unsafe<{ version: number }>(
      `SELECT version FROM "${schema}".job_events WHERE job_id = $1 ORDER BY version`,
      [id]
    )
    return rows.map((row) => row.version)
  })

describe("upgrade", () => {
  it.live("a database of before the repeatable files, with jobs and events in it, upgrades in place", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      yield* oldDatabase
      const before = yield* snapshot
      assert.deepStrictEqual(before.jobs.map((job) => [job.status, job.version]), [
        ["pending", 1],
        ["running", 3],
        ["completed", 3]
      ])

      // today's migrations: the versioned files after 0012 and every repeatable file
      const all = (yield* Migrations.load()).map((m) => m.id)
      assert.deepStrictEqual(yield* Migrations.run(), all.filter((id) => id > 12))
      const recorded = yield* sql.unsafe<{ id: number | null; name: string }>(
        `SELECT id, name FROM "${schema}".jobwatch_migrations ORDER BY id NULLS LAST, name`
      )
      const ids = recorded.flatMap((row) => row.id === null ? [] : [row.id])
      assert.deepStrictEqual(ids, all)
      const live = (yield* Migrations.loadRepeatable()).map((file) => file.name)
      assert.deepStrictEqual(recorded.filter((row) => row.id === null).map((row) => row.name), live)
      // the new shape: no primary key on id (repeatable files are recorded with id null)
      const keys = yield* sql.unsafe(`SELECT 1 FROM pg_constraint
        WHERE conrelid = '"${schema}".jobwatch_migrations'::regclass AND contype = 'p'`)
      assert.strictEqual(keys.length, 0)
      // nothing written before was touched
      assert.deepStrictEqual(yield* snapshot, before)

      // today's services on it: a waiter, a claim and completes continue each job's versions gap-free
      yield* Effect.gen(function*() {
        const watcher = yield* CompletionWatcher
        const workers = yield* Workers
        const done = yield* watcher.waitFor(completedId)
        assert.deepStrictEqual([done.status, done.result, done.version], ["completed", { done: true }, 3])
        const waiting = yield* Effect.fork(watcher.waitFor(runningId))
        yield* workers.complete(runningId, { workerId: "w-old", result: 2 })
        const completed = yield* waiting.await
        assert.isTrue(completed._tag === "Success" && completed.value.status === "completed")
        const [claimed] = yield* workers.claim("w-new", { queues: ["old"] })
        assert.deepStrictEqual([claimed?.id, claimed?.version, claimed?.attempt], [pendingId, 2, 1])
        yield* workers.fail(pendingId, { workerId: "w-new", error: "again", retryable: false })
        assert.strictEqual((yield* watcher.waitFor(pendingId)).status, "failed")
      }).pipe(Effect.provide(JobWatch.layer))

      assert.deepStrictEqual(yield* versionsOf(completedId), [1, 2, 3])
      assert.deepStrictEqual(yield* versionsOf(runningId), [1, 2, 3, 4])
      assert.deepStrictEqual(yield* versionsOf(pendingId), [1, 2, 3])
    }).pipe(Effect.provide(TestDb.layer({ reaper: false }))), { timeout: 60_000 })
})
