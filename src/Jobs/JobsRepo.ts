import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import { DateTime, Effect, Option, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { JobNotFound } from "../Domain/Errors.js"
import { JobRef } from "../Domain/Job.js"
import { JobId, makeEventId } from "../Domain/JobId.js"
import type { Backoff } from "../Domain/Worker.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { JobStatus as JobStatusSchema } from "../Domain/JobStatus.js"
import { DbJobId, decodeJobRows, jobColumns, scheduledAtOf, toJobInfo } from "../internal/rows.js"

/** A validated job, ready to insert (see `Jobs.enqueue`). */
export interface NewJob {
  readonly id: JobId
  readonly queue: string
  readonly name: string
  readonly owner: string | null
  /** The payload as JSON text (already measured against the limit). */
  readonly payloadJson: string
  readonly priority: number
  readonly runAt: Date | null
  readonly delayMs: number | null
  readonly maxAttempts: number
  readonly timeoutMs: number | null
  readonly idempotencyKey: string | null
  readonly backoff: Backoff
  /** The job's own callback for its completion or failure (checked by the caller). */
  readonly webhookUrl: string | null
  /** The secret that signs that callback (`whsec_…`), if any. */
  readonly webhookSecret: string | null
  /** Run outside jobwatch (`tracking: "external"`): never claimed. */
  readonly external: boolean
  /** A task's job type (`JobLib.push`): only the workers serving that type claim it. */
  readonly jobTypeId?: number | undefined
  /** The W3C trace context the job was created in (validated), handed to the worker that claims it. */
  readonly traceparent?: string | undefined
  readonly tracestate?: string | undefined
}

export interface ListFilter {
  readonly statuses?: ReadonlyArray<JobStatus> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly owner?: string | undefined
}

/**
 * What `job_enqueue` answers, in one row: the transaction's `now()` in epoch microseconds (every new job's
 * `created_at`), how many jobs it inserted and, when some had an idempotency key, which.
 */
const EnqueuedRow = Schema.Struct({
  nowUs: Schema.NumberFromString,
  inserted: Schema.Number,
  ids: Schema.NullOr(Schema.Array(DbJobId))
})
const decodeEnqueued = Schema.decodeUnknown(Schema.Tuple(EnqueuedRow))

const ExistingRow = Schema.Struct({
  owner: Schema.NullOr(Schema.String),
  idempotencyKey: Schema.String,
  id: DbJobId,
  name: Schema.String,
  queue: Schema.String,
  status: JobStatusSchema,
  scheduledAt: Schema.DateFromSelf,
  createdAt: Schema.DateFromSelf
})

const StatusRow = Schema.Struct({ id: DbJobId, status: JobStatusSchema, percent: Schema.Number, version: Schema.Number })

const decodeIds = Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: DbJobId })))
const decodeTotal = Schema.decodeUnknown(Schema.Tuple(Schema.Struct({ total: Schema.Number })))
const json = (value: unknown) => JSON.stringify(value)

const needsEscape = /["\\]/
const escapes = /["\\]/g
/**
 * A PostgreSQL array literal of `values` (`{a,"b c",NULL}`), made here: the driver's own quoting ran two regular
 * expressions over each of the 17,000 values of a 1,000-job batch. Ids and numbers need no quotes; texts are quoted.
 */
const arrayLiteral = (values: ReadonlyArray<string | number | null>, quoted: boolean): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    if (i > 0) out += ","
    if (value === null || value === undefined) out += "NULL"
    else if (!quoted || typeof value === "number") out += value
    else out += needsEscape.test(value) ? `"${value.replace(escapes, "\\$&")}"` : `"${value}"`
  }
  return out + "}"
}

/** The SQL of jobs: the insert (through `job_enqueue`) and the reads. `SqlError`s and bad rows are defects here. */
export class JobsRepo extends Effect.Service<JobsRepo>()("jobwatch/JobsRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const enqueueFunction = sql(`${schema}.job_enqueue`)
    const columns = sql.literal(jobColumns)
    // among the jobs workers claim: an external job has no place in the queue; a task's place is among its type's
    // tasks in its room (each through its own claim index)
    const queuePosition = sql`CASE WHEN j.status = 'pending' AND NOT j.external AND j.job_type_id IS NULL THEN (
      SELECT count(*)::int + 1 FROM ${jobs} p
      WHERE p.status = 'pending' AND NOT p.external AND p.job_type_id IS NULL AND p.queue = j.queue
        AND (p.priority > j.priority OR (p.priority = j.priority AND p.id < j.id))
    ) WHEN j.status = 'pending' AND j.job_type_id IS NOT NULL THEN (
      SELECT count(*)::int + 1 FROM ${jobs} p
      WHERE p.status = 'pending' AND p.job_type_id = j.job_type_id AND p.queue = j.queue
        AND (p.priority > j.priority OR (p.priority = j.priority AND p.id < j.id))
    ) END AS "queuePosition"`
    const noPosition = sql.literal(`NULL::int AS "queuePosition"`)

    const toRef = (row: {
      readonly id: JobId
      readonly name: string
      readonly queue: string
      readonly status: JobStatus
      readonly scheduledAt: Date
      readonly createdAt: Date
    }, existing: boolean) =>
      // built from our own validated input and rows: skip the constructor's validation (1,000 per batch)
      new JobRef({
        id: row.id,
        name: row.name,
        queue: row.queue,
        status: row.status,
        scheduledAt: scheduledAtOf(row.scheduledAt, row.createdAt),
        createdAt: DateTime.unsafeFromDate(row.createdAt),
        existing
      }, true)

    const findExisting = (keys: ReadonlyArray<{ readonly owner: string | null; readonly idempotencyKey: string }>) =>
      sql`SELECT j.owner, j.idempotency_key AS "idempotencyKey", j.id, j.name, j.queue, j.status,
            j.scheduled_at AS "scheduledAt", j.created_at AS "createdAt"
          FROM ${jobs} j
          JOIN json_to_recordset(${json(keys)}::json) AS k(owner text, "idempotencyKey" text)
            ON j.owner IS NOT DISTINCT FROM k.owner AND j.idempotency_key = k."idempotencyKey"`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(ExistingRow)))
      )

    /**
     * Inserts up to `maxBatchSize` jobs and their first events in one statement. An idempotency key that matches
     * an existing job (same owner) answers that job with `existing: true`, in input order.
     */
    const insert = (input: ReadonlyArray<NewJob>) =>
      Effect.gen(function*() {
        // one array per column (unnest in SQL); payloads are JSON already and go as jsonb texts. A delay goes in
        // whole microseconds, so that each job's due time is known here, to the microsecond, from the one `now`
        const n = input.length
        const column = (f: (job: NewJob) => string | number | null, quoted = true): string => {
          const out = new Array<string | number | null>(n)
          for (let i = 0; i < n; i++) out[i] = f(input[i]!)
          return arrayLiteral(out, quoted)
        }
        const delayUs = input.map((job) => (job.delayMs === null ? null : Math.round(job.delayMs * 1000)))
        const keyed = input.some((job) => job.idempotencyKey !== null)
        // a traceparent is hex and dashes: no quotes in the array literal; none at all: a null array
        const traced = input.some((job) => job.traceparent !== undefined)
        const rows = yield* sql`SELECT now_us::text AS "nowUs", inserted, ids FROM ${enqueueFunction}(
            ${column((job) => job.id, false)}::uuid[], ${column(() => makeEventId(), false)}::uuid[],
            ${column((job) => job.queue)}::text[], ${column((job) => job.name)}::text[],
            ${column((job) => job.owner)}::text[], ${column((job) => job.payloadJson)}::jsonb[],
            ${column((job) => job.priority)}::int[], ${column((job) => job.runAt?.toISOString() ?? null)}::timestamptz[],
            ${arrayLiteral(delayUs, false)}::bigint[], ${column((job) => job.maxAttempts)}::int[],
            ${column((job) => job.timeoutMs)}::bigint[], ${column((job) => job.idempotencyKey)}::text[],
            ${column((job) => job.backoff.delayMs)}::bigint[], ${column((job) => job.backoff.maxDelayMs)}::bigint[],
            ${column((job) => job.backoff.multiplier)}::float8[], ${column((job) => job.webhookUrl)}::text[],
            ${column((job) => job.webhookSecret)}::text[],
            ${input.some((job) => job.external) ? column((job) => String(job.external), false) : null}::boolean[],
            ${input.some((job) => job.jobTypeId !== undefined) ? column((job) => job.jobTypeId ?? null, false) : null}::bigint[],
            ${traced ? column((job) => job.traceparent ?? null, false) : null}::text[],
            ${input.some((job) => job.tracestate !== undefined) ? column((job) => job.tracestate ?? null) : null}::text[],
            ${keyed})`.pipe(
          Effect.flatMap(decodeEnqueued)
        )
        const [{ ids, inserted: count, nowUs }] = rows
        if (!keyed && count !== n) return yield* Effect.die(new Error(`inserted ${count} of ${n} jobs without a key`))
        const inserted = keyed ? new Set(ids ?? []) : undefined
        const conflicts = inserted === undefined ? [] : input.filter((job) => !inserted.has(job.id))
        if (conflicts.some((job) => job.idempotencyKey === null)) {
          return yield* Effect.die(new Error("a job without an idempotency key was not inserted"))
        }
        // a separate statement: its fresh snapshot sees a concurrent insert that won the key
        const existing = conflicts.length === 0
          ? []
          : yield* findExisting(conflicts.map((job) => ({ owner: job.owner, idempotencyKey: job.idempotencyKey! })))
        const byKey = new Map(existing.map((row) => [`${row.owner ?? ""}\u0000${row.idempotencyKey}`, row]))
        // created_at is the transaction's now(); the due time is the SQL's coalesce(run_at, now() + delay, now()).
        // One DateTime for every job's creation (immutable, so shared); a job due at once has no scheduledAt
        const createdMs = Math.floor(nowUs / 1000)
        const createdAt = DateTime.unsafeMake(createdMs)
        return input.map((job, i) => {
          if (inserted === undefined || inserted.has(job.id)) {
            const dueUs = job.runAt !== null ? job.runAt.getTime() * 1000 : nowUs + (delayUs[i] ?? 0)
            const dueMs = Math.floor(dueUs / 1000)
            // built from our own validated input: skip the constructor's validation (1,000 per batch)
            return new JobRef({
              id: job.id,
              name: job.name,
              queue: job.queue,
              status: dueUs > nowUs ? "scheduled" : "pending",
              scheduledAt: dueMs === createdMs ? null : DateTime.unsafeMake(dueMs),
              createdAt,
              existing: false
            }, true)
          }
          const found = byKey.get(`${job.owner ?? ""}\u0000${job.idempotencyKey}`)
          if (found === undefined) throw new Error(`idempotency key ${job.idempotencyKey} conflicted but was not found`)
          return toRef(found, true)
        })
      }).pipe(Effect.orDie)

    /** Whether job `id` is external (`tracking: "external"`), which never changes. */
    const isExternal = (id: JobId) =>
      sql<{ readonly external: boolean }>`SELECT external FROM ${jobs} WHERE id = ${id}`.pipe(
        Effect.orDie,
        Effect.flatMap((rows) => rows.length === 0 ? new JobNotFound({ id }) : Effect.succeed(rows[0]!.external === true))
      )

    const get = (id: JobId, owner?: string) =>
      sql`SELECT ${columns}, ${queuePosition} FROM ${jobs} j
          WHERE j.id = ${id} ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
        Effect.flatMap(decodeJobRows),
        Effect.orDie,
        Effect.flatMap((rows) => rows.length === 0 ? new JobNotFound({ id }) : Effect.succeed(toJobInfo(rows[0]!)))
      )

    /**
     * A job library task, as `viewer` may see it: the task's creator, or the worker holding it (`viewer` or
     * `<viewer>:…`, the worker ids its token may act as); every task when `viewer` is undefined (an admin).
     */
    const getTask = (id: JobId, viewer?: string) =>
      sql`SELECT ${columns}, ${queuePosition} FROM ${jobs} j
          WHERE j.id = ${id} AND j.job_type_id IS NOT NULL ${
        viewer === undefined
          ? sql``
          : sql`AND (j.owner = ${viewer} OR j.worker_id = ${viewer} OR starts_with(j.worker_id, ${`${viewer}:`}))`
      }`.pipe(
        Effect.flatMap(decodeJobRows),
        Effect.orDie,
        Effect.flatMap((rows) => rows.length === 0 ? new JobNotFound({ id }) : Effect.succeed(toJobInfo(rows[0]!)))
      )

    const status = (id: JobId, owner?: string) =>
      sql`SELECT j.id, j.status, j.progress_percent AS percent, j.version FROM ${jobs} j
          WHERE j.id = ${id} ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(StatusRow))),
        Effect.orDie,
        Effect.flatMap((rows) => rows.length === 0 ? new JobNotFound({ id }) : Effect.succeed(rows[0]!))
      )

    const exists = (id: JobId, owner?: string) =>
      sql`SELECT 1 AS one FROM ${jobs} j
          WHERE j.id = ${id} ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.orDie
      )

    /** Which of `ids` exist (and belong to `owner`, when given). */
    const visible = (ids: ReadonlyArray<JobId>, owner?: string) =>
      ids.length === 0
        ? Effect.succeed(new Set<JobId>())
        : sql`SELECT j.id FROM ${jobs} j
            WHERE j.id = ANY(${ids}::uuid[]) ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
          Effect.flatMap(decodeIds),
          Effect.map((rows) => new Set(rows.map((row) => row.id))),
          Effect.orDie
        )

    const where = (filter: ListFilter, extra: ReadonlyArray<Statement.Fragment> = []) => {
      const clauses: Array<Statement.Fragment> = [...extra]
      if (filter.statuses !== undefined) clauses.push(sql`j.status = ANY(${filter.statuses})`)
      if (filter.queue !== undefined) clauses.push(sql`j.queue = ${filter.queue}`)
      if (filter.name !== undefined) clauses.push(sql`j.name = ${filter.name}`)
      if (filter.owner !== undefined) clauses.push(sql`j.owner = ${filter.owner}`)
      return clauses.length === 0 ? sql`` : sql`WHERE ${sql.and(clauses)}`
    }

    /** One page, newest first, with the total count of matching jobs. */
    const listPage = (filter: ListFilter, page: number, limit: number) =>
      Effect.all({
        rows: sql`SELECT ${columns}, ${noPosition} FROM ${jobs} j ${where(filter)}
                  ORDER BY j.id DESC LIMIT ${limit} OFFSET ${(page - 1) * limit}`.pipe(Effect.flatMap(decodeJobRows)),
        total: sql`SELECT count(*)::int AS total FROM ${jobs} j ${where(filter)}`.pipe(
          Effect.flatMap(decodeTotal),
          Effect.map(([row]) => row.total)
        )
      }, { concurrency: 2 }).pipe(
        Effect.map(({ rows, total }) => ({ jobs: rows.map(toJobInfo), total })),
        Effect.orDie
      )

    /** Keyset paging: the `limit` newest jobs older than `before` (a job id). */
    const listAfter = (filter: ListFilter, before: JobId | undefined, limit: number) =>
      sql`SELECT ${columns}, ${noPosition} FROM ${jobs} j
          ${where(filter, before === undefined ? [] : [sql`j.id < ${before}`])}
          ORDER BY j.id DESC LIMIT ${limit + 1}`.pipe(
        Effect.flatMap(decodeJobRows),
        Effect.map((rows) => ({
          jobs: rows.slice(0, limit).map(toJobInfo),
          last: rows.length > limit ? Option.some(rows[limit - 1]!.id) : Option.none()
        })),
        Effect.orDie
      )

    return { insert, isExternal, get, getTask, status, exists, visible, listPage, listAfter } as const
  })
}) {}
