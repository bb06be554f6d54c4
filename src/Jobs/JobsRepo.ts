import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import { DateTime, Effect, Either, Option, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidTransition, JobNotFound, NotJobHolder } from "../Domain/Errors.js"
import type { JobInfo } from "../Domain/Job.js"
import { JobError, JobOutcome, JobRef } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { JobId, makeEventId } from "../Domain/JobId.js"
import type { Backoff } from "../Domain/Worker.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { allowedFrom, isTerminal, JobStatus as JobStatusSchema } from "../Domain/JobStatus.js"
import type { EventRecord, JobRecord } from "../internal/rows.js"
import {
  EventRow,
  eventColumns,
  eventRowOf,
  JobRow,
  jobColumns,
  jobRowOf,
  scheduledAtOf,
  toJobEvent,
  toJobInfo
} from "../internal/rows.js"
import { LocalEvents } from "../EventLog/LocalEvents.js"

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
}

export interface ListFilter {
  readonly statuses?: ReadonlyArray<JobStatus> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly owner?: string | undefined
}

/**
 * What a transition changes besides the status and the version: each kind is one static statement of the
 * `job_transition` function (sql/0010), parsed and planned once per connection.
 */
export type Change =
  /** The status only. */
  | { readonly kind: "status" }
  /** And `started_at`. */
  | { readonly kind: "start" }
  /** And the result (JSON text); progress ends at 100; the job is let go. */
  | { readonly kind: "complete"; readonly resultJson: string }
  /** And the error, for good; the job is let go. */
  | { readonly kind: "fail"; readonly code: string | null; readonly error: string }
  /** Back to the queue after `delayMs`, keeping the attempt's error; the job is let go. */
  | { readonly kind: "retry"; readonly delayMs: number; readonly code: string | null; readonly error: string }
  /** Finished now (canceled, deleted); the job is let go. */
  | { readonly kind: "finish" }
  /** The status stays; `cancel_requested` is set, once (refused when it is set already). */
  | { readonly kind: "request_cancel" }
  /**
   * The holder's fail: another attempt after the job's backoff (jittered by `jitter`, 0–1, from `now`) when
   * `retryable`, not canceled and attempts remain; else `failed` for good (the transition's `to` is not used).
   */
  | {
    readonly kind: "attempt_failed"
    readonly retryable: boolean
    readonly now: Date
    readonly jitter: number
    readonly code: string | null
    readonly error: string
  }

/** A status change of one job: the compare-and-set primitive every lifecycle operation is built on. */
export interface Transition {
  readonly id: JobId
  /** The new status; omitted for a change that keeps the status (a cancel request). */
  readonly to?: JobStatus | undefined
  /** The statuses the job may be in; by default those the transition table allows to move to `to`. */
  readonly from?: ReadonlyArray<JobStatus> | undefined
  /** Only the job of this owner (another owner's job is not found). */
  readonly owner?: string | undefined
  /** Only while this worker holds the job. */
  readonly workerId?: string | undefined
  /** What else changes; the status only by default. */
  readonly change?: Change | undefined
  /** The event's message. */
  readonly message?: string | null | undefined
}

/** What a transition found when it did not apply. */
export class TransitionRefused extends Schema.TaggedError<TransitionRefused>()("TransitionRefused", {
  id: JobId,
  found: JobStatusSchema,
  workerId: Schema.NullOr(Schema.String)
}) {}

/** What `job_transition` answers for a job found (our own SQL: typed, not decoded): its job and event if changed. */
interface Found {
  readonly foundStatus: JobStatus
  readonly foundWorker: string | null
  readonly job?: JobRecord
  readonly event?: EventRecord
}

/** What the insert answers per input job, in input order (our own SQL: typed, not decoded). */
interface InsertedRow {
  readonly id: JobId
  readonly status: JobStatus
  /** Epoch milliseconds. */
  readonly scheduledAt: number
  readonly createdAt: number
}

const ExistingRow = Schema.Struct({
  owner: Schema.NullOr(Schema.String),
  idempotencyKey: Schema.String,
  id: JobId,
  name: Schema.String,
  queue: Schema.String,
  status: JobStatusSchema,
  scheduledAt: Schema.DateFromSelf,
  createdAt: Schema.DateFromSelf
})

const StatusRow = Schema.Struct({ id: JobId, status: JobStatusSchema, percent: Schema.Number, version: Schema.Number })

/** A job's outcome as `outcomes` selects it (our own SQL: typed, not decoded). */
interface OutcomeRow {
  readonly id: JobId
  readonly status: JobStatus
  readonly result: unknown
  readonly errorCode: string | null
  readonly errorMessage: string | null
  readonly version: number
  readonly finishedAt: Date | null
}

const toOutcome = (row: OutcomeRow): JobOutcome =>
  new JobOutcome({
    id: row.id,
    status: row.status,
    terminal: isTerminal(row.status),
    result: row.result,
    error: row.errorCode === null && row.errorMessage === null
      ? null
      : new JobError({ code: row.errorCode, message: row.errorMessage ?? "" }, true),
    version: row.version,
    finishedAt: row.finishedAt === null ? null : DateTime.unsafeFromDate(row.finishedAt)
  }, true)

/**
 * A position in the stream of all events: the writing transaction's id (a decimal xid8), then the job and version.
 * Positions are totally ordered; an event is "after" a position when its triple is greater.
 */
export interface StreamPosition {
  readonly tx: string
  readonly jobId: string
  readonly version: number
}

/** What `job_complete_many` answers per job found (our own SQL: typed, not decoded): its event if completed. */
interface Completed {
  readonly id: JobId
  readonly foundStatus: JobStatus
  readonly foundWorker: string | null
  readonly event: EventRecord | null
  readonly result: unknown
}

/**
 * Rows of our own statements, whose column types PostgreSQL fixes (timestamptz → Date, int → number, jsonb →
 * parsed): typed, not decoded (a schema decode of every row was a measurable share of the worker path's CPU, for
 * no check the column types do not already make). The tests run every statement against both supported versions.
 */
const decodeJobs = (rows: ReadonlyArray<unknown>) => Effect.succeed(rows as ReadonlyArray<JobRow>)
const decodeEvents = (rows: ReadonlyArray<unknown>) => Effect.succeed(rows as ReadonlyArray<EventRow>)
const json = (value: unknown) => JSON.stringify(value)

/** The SQL of jobs and their events. `SqlError`s and undecodable rows are defects here. */
export class JobsRepo extends Effect.Service<JobsRepo>()("jobwatch/JobsRepo", {
  dependencies: [LocalEvents.Default],
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const local = yield* LocalEvents
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const events = sql(`${schema}.job_events`)
    const transitionFunction = sql(`${schema}.job_transition`)
    const completeManyFunction = sql(`${schema}.job_complete_many`)
    const workers = sql(`${schema}.workers`)
    const columns = sql.literal(jobColumns)
    const queuePosition = sql`CASE WHEN j.status = 'pending' THEN (
      SELECT count(*)::int + 1 FROM ${jobs} p
      WHERE p.status = 'pending' AND p.queue = j.queue
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
        // payloads are JSON already: splice them in rather than parse and re-serialise them
        // the first events' ids are made here too: the SQL uuid_v7() cost about 3 ms per 1,000
        const body = input.map((job) =>
          `{"id":${json(job.id)},"event_id":${json(makeEventId())},"queue":${json(job.queue)},"name":${json(job.name)},` +
          `"owner":${json(job.owner)},"payload":${job.payloadJson},"priority":${job.priority},` +
          `"run_at":${json(job.runAt?.toISOString() ?? null)},"delay_ms":${json(job.delayMs)},` +
          `"max_attempts":${job.maxAttempts},"timeout_ms":${json(job.timeoutMs)},` +
          `"idempotency_key":${json(job.idempotencyKey)},"backoff_base_ms":${job.backoff.delayMs},` +
          `"backoff_max_ms":${job.backoff.maxDelayMs},"backoff_multiplier":${job.backoff.multiplier},` +
          `"webhook_url":${json(job.webhookUrl)},"webhook_secret":${json(job.webhookSecret)}}`
        )
        // without idempotency keys nothing can conflict: a plain insert skips the speculative-insertion protocol
        const onConflict = input.some((job) => job.idempotencyKey !== null)
          ? sql`ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`
          : sql``
        // answers the inserted jobs only (a job whose idempotency key matched is absent), timestamps as epoch
        // milliseconds: 2,000 timestamps parsed per batch were a visible share of its time
        const rows = yield* sql<InsertedRow>`
          WITH input AS (
            SELECT x.*, coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) AS due
            FROM jsonb_to_recordset(${`[${body.join(",")}]`}::jsonb) AS x(
              id uuid, event_id uuid, queue text, name text, owner text, payload jsonb, priority int,
              run_at timestamptz, delay_ms float8, max_attempts int, timeout_ms bigint, idempotency_key text,
              backoff_base_ms bigint, backoff_max_ms bigint, backoff_multiplier float8, webhook_url text, webhook_secret text)
          ), ins AS (
            INSERT INTO ${jobs} (id, queue, name, owner, payload, priority, status, max_attempts, timeout_ms,
              idempotency_key, scheduled_at, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url,
              webhook_secret)
            SELECT id, queue, name, owner, coalesce(payload, 'null'::jsonb), priority,
              CASE WHEN due > now() THEN 'scheduled' ELSE 'pending' END, max_attempts, timeout_ms,
              idempotency_key, due, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url, webhook_secret
            FROM input
            ${onConflict}
            RETURNING id, status, scheduled_at, created_at
          ), ev AS (
            INSERT INTO ${events} (job_id, version, id, type, status)
            SELECT ins.id, 1, input.event_id, 'job.status.changed', ins.status FROM ins JOIN input USING (id)
          )
          SELECT id, status, floor(extract(epoch FROM scheduled_at) * 1000)::float8 AS "scheduledAt",
            floor(extract(epoch FROM created_at) * 1000)::float8 AS "createdAt"
          FROM ins`
        const inserted = new Map(rows.map((row) => [row.id, row]))
        const conflicts = input.filter((job) => !inserted.has(job.id))
        if (conflicts.some((job) => job.idempotencyKey === null)) {
          return yield* Effect.die(new Error("a job without an idempotency key was not inserted"))
        }
        // a separate statement: its fresh snapshot sees a concurrent insert that won the key
        const existing = conflicts.length === 0
          ? []
          : yield* findExisting(conflicts.map((job) => ({ owner: job.owner, idempotencyKey: job.idempotencyKey! })))
        const byKey = new Map(existing.map((row) => [`${row.owner ?? ""}\u0000${row.idempotencyKey}`, row]))
        return input.map((job) => {
          const row = inserted.get(job.id)
          if (row !== undefined) {
            return toRef({
              id: row.id,
              name: job.name,
              queue: job.queue,
              status: row.status,
              scheduledAt: new Date(row.scheduledAt),
              createdAt: new Date(row.createdAt)
            }, false)
          }
          const found = byKey.get(`${job.owner ?? ""}\u0000${job.idempotencyKey}`)
          if (found === undefined) throw new Error(`idempotency key ${job.idempotencyKey} conflicted but was not found`)
          return toRef(found, true)
        })
      }).pipe(Effect.orDie)

    const get = (id: JobId, owner?: string) =>
      sql`SELECT ${columns}, ${queuePosition} FROM ${jobs} j
          WHERE j.id = ${id} ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
        Effect.flatMap(decodeJobs),
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
        : sql<{ readonly id: JobId }>`SELECT j.id FROM ${jobs} j
            WHERE j.id = ANY(${ids}::uuid[]) ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}`.pipe(
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
                  ORDER BY j.id DESC LIMIT ${limit} OFFSET ${(page - 1) * limit}`.pipe(Effect.flatMap(decodeJobs)),
        total: sql<{ total: number }>`SELECT count(*)::int AS total FROM ${jobs} j ${where(filter)}`.pipe(
          Effect.map((rows) => rows[0]?.total ?? 0)
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
        Effect.flatMap(decodeJobs),
        Effect.map((rows) => ({
          jobs: rows.slice(0, limit).map(toJobInfo),
          last: rows.length > limit ? Option.some(rows[limit - 1]!.id) : Option.none()
        })),
        Effect.orDie
      )

    /**
     * A changed job and its event, the event handed to this process's subscribers: committed already unless the
     * caller holds a transaction (then the doorbell tells, after its commit).
     */
    const announce = (job: JobRow, event: () => EventRow) =>
      Effect.gen(function*() {
        if (Option.isNone(yield* Effect.serviceOption(SqlClient.TransactionConnection))) {
          yield* local.publish(toJobEvent(event()))
        }
        return toJobInfo(job)
      })

    /** The job a single-job change statement answered: its columns and `event`, the event's `row_to_json`. */
    const changedJob = (rows: ReadonlyArray<unknown>) =>
      Effect.gen(function*() {
        const [job] = yield* decodeJobs(rows)
        const { event } = rows[0] as { readonly event: EventRecord }
        return yield* announce(job!, () => eventRowOf(event, job!.result))
      })

    /** The arguments of `job_transition` that each change uses (the others are null). */
    const changeArguments = (change: Change) => ({
      result: change.kind === "complete" ? change.resultJson : null,
      code: "code" in change ? change.code : null,
      error: "error" in change ? change.error : null,
      delayMs: change.kind === "retry" ? change.delayMs : null,
      retryable: change.kind === "attempt_failed" ? change.retryable : null,
      now: change.kind === "attempt_failed" ? change.now : null,
      jitter: change.kind === "attempt_failed" ? change.jitter : null
    })

    /**
     * The transition primitive: in one call of `job_transition` (sql/0010), lock the job, compare-and-set its status
     * with `version = version + 1`, and insert the event of that version (whose trigger rings the doorbell).
     */
    const transition = (t: Transition): Effect.Effect<JobInfo, JobNotFound | TransitionRefused> => {
      const from = t.from ?? (t.to === undefined ? [] : allowedFrom(t.to))
      const change = t.change ?? { kind: "status" }
      const a = changeArguments(change)
      return sql<{ readonly found: Found | null }>`
        SELECT ${transitionFunction}(${t.id}::uuid, ${change.kind}::text, ${t.to ?? null}::text, ${from}::text[],
          ${t.owner ?? null}::text, ${t.workerId ?? null}::text, ${t.message ?? null}::text, ${a.result}::jsonb,
          ${a.code}::text, ${a.error}::text, ${a.delayMs}::float8, ${a.retryable}::boolean, ${a.now}::timestamptz,
          ${a.jitter}::float8) AS found`.pipe(
        Effect.catchTag("SqlError", Effect.die),
        Effect.flatMap((rows): Effect.Effect<JobInfo, JobNotFound | TransitionRefused> => {
          const found = rows[0]!.found
          if (found === null) return new JobNotFound({ id: t.id })
          if (found.job === undefined || found.event === undefined) {
            return new TransitionRefused({ id: t.id, found: found.foundStatus, workerId: found.foundWorker })
          }
          const job = jobRowOf(found.job)
          const event = found.event
          return announce(job, () => eventRowOf(event, job.result))
        })
      )
    }

    /**
     * As `transition`, with a refusal reported as `NotJobHolder` when `t.workerId` acts on a job another worker (or
     * none) holds, else as `InvalidTransition` from the status found.
     */
    const transitionOrInvalid = (t: Transition & { readonly to: JobStatus }) =>
      transition(t).pipe(
        Effect.catchTag("TransitionRefused", (refused): Effect.Effect<never, InvalidTransition | NotJobHolder> =>
          t.workerId !== undefined && (refused.found === "claimed" || refused.found === "running") &&
            refused.workerId !== t.workerId
            ? Effect.fail(new NotJobHolder({ id: t.id, workerId: t.workerId }))
            : Effect.fail(new InvalidTransition({ id: t.id, from: refused.found, to: t.to })))
      )

    /**
     * Claims up to `limit` pending jobs of `queues` (and `names`), priority first then oldest, skipping jobs other
     * claimers hold locked, and leases them to `workerId` for `leaseMs` from `now` (the caller's clock; the
     * database's by default). The same statement registers the worker (or refreshes its registration): what it
     * serves, its heartbeat interval, and that it was seen now.
     */
    const claim = (options: {
      readonly workerId: string
      readonly queues: ReadonlyArray<string>
      readonly names?: ReadonlyArray<string> | undefined
      readonly limit: number
      readonly leaseMs: number
      readonly heartbeatIntervalMs?: number | undefined
      readonly now?: Date | undefined
      /** Claim and start at once (`pending` → `running`): for workers that run a job the moment they take it. */
      readonly start?: boolean | undefined
    }) => {
      const now = options.now === undefined ? sql`now()` : sql`${options.now}::timestamptz`
      return sql`
        WITH w AS (
          INSERT INTO ${workers} AS w (id, queues, names, heartbeat_interval_ms, lease_ms, registered_at, last_seen_at)
          VALUES (${options.workerId}, ${options.queues}::text[], ${options.names ?? null}::text[],
            ${Math.max(1, Math.round(options.heartbeatIntervalMs ?? options.leaseMs / 1.5))}, ${options.leaseMs},
            ${now}, ${now})
          ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, names = EXCLUDED.names,
            heartbeat_interval_ms = EXCLUDED.heartbeat_interval_ms, lease_ms = EXCLUDED.lease_ms,
            last_seen_at = EXCLUDED.last_seen_at
          RETURNING w.id
        ), cand AS (
          SELECT id, status FROM ${jobs}
          WHERE status = 'pending' AND queue = ANY(${options.queues})
            ${options.names === undefined ? sql`` : sql`AND name = ANY(${options.names})`}
          ORDER BY priority DESC, id
          LIMIT ${options.limit}
          FOR UPDATE SKIP LOCKED
        ), upd AS (
          UPDATE ${jobs} j SET
            status = ${options.start === true ? "running" : "claimed"}, version = j.version + 1, updated_at = now(),
            attempt = j.attempt + 1, worker_id = (SELECT id FROM w),
            lease_expires_at = ${now} + ${options.leaseMs} * interval '1 millisecond',
            claimed_at = ${now}, started_at = ${options.start === true ? now : sql`NULL`}, cancel_requested = false
          FROM cand WHERE j.id = cand.id
          RETURNING j.*, cand.status AS previous_status
        ), ev AS (
          INSERT INTO ${events} (job_id, version, type, status, previous_status, progress, previous_progress,
            step, attempt)
          SELECT id, version, 'job.status.changed', status, previous_status, progress_percent, progress_percent,
            progress_step, attempt
          FROM upd
        )
        SELECT ${columns}, ${noPosition} FROM upd j ORDER BY j.priority DESC, j.id`.pipe(
        Effect.flatMap(decodeJobs),
        Effect.map((rows) => rows.map(toJobInfo)),
        Effect.orDie
      )
    }

    /** The events of a job after `afterVersion`, in version order. */
    const eventsOf = (id: JobId, afterVersion: number, limit = 1000) =>
      sql`SELECT ${sql.literal(eventColumns)} FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.job_id = ${id} AND e.version > ${afterVersion}
          ORDER BY e.version LIMIT ${limit}`.pipe(
        Effect.flatMap(decodeEvents),
        Effect.map((rows): ReadonlyArray<JobEvent> => rows.map(toJobEvent)),
        Effect.orDie
      )

    /**
     * The events after each job's cursor, for many jobs in one query, ordered by job then version. The caller
     * bounds the number of jobs (chunks of at most 1,000).
     */
    const eventsAfter = (cursors: ReadonlyArray<{ readonly id: JobId; readonly after: number }>) =>
      cursors.length === 0
        ? Effect.succeed<ReadonlyArray<JobEvent>>([])
        : sql`SELECT ${sql.literal(eventColumns)}
              FROM unnest(${cursors.map((c) => c.id)}::uuid[], ${cursors.map((c) => c.after)}::int[]) AS w(id, after)
              JOIN ${events} e ON e.job_id = w.id AND e.version > w.after
              JOIN ${jobs} j ON j.id = e.job_id
              ORDER BY e.job_id, e.version`.pipe(
          Effect.flatMap(decodeEvents),
          Effect.map((rows): ReadonlyArray<JobEvent> => rows.map(toJobEvent)),
          Effect.orDie
        )

    /**
     * The stream of all events (of `filter.owner`'s jobs, when given) after `cursor`, in stream order, at most
     * `limit`: only events of transactions below this read's snapshot xmin, which have all ended (sql/0006), so no
     * later read can find an event before the last one answered. `position` is the events' stream position.
     */
    const streamAfter = (
      cursor: StreamPosition,
      filter: { readonly owner?: string | undefined; readonly statuses?: ReadonlyArray<JobStatus> | undefined; readonly queue?: string | undefined; readonly name?: string | undefined },
      limit: number
    ) =>
      sql<EventRow & { readonly tx: string }>`SELECT ${sql.literal(eventColumns)}, e.tx::text AS tx
          FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
            AND (e.tx, e.job_id, e.version) > (${cursor.tx}::xid8, ${cursor.jobId}::uuid, ${cursor.version}::int)
            ${filter.owner === undefined ? sql`` : sql`AND j.owner = ${filter.owner}`}
            ${filter.statuses === undefined ? sql`` : sql`AND e.status = ANY(${filter.statuses})`}
            ${filter.queue === undefined ? sql`` : sql`AND j.queue = ${filter.queue}`}
            ${filter.name === undefined ? sql`` : sql`AND j.name = ${filter.name}`}
          ORDER BY e.tx, e.job_id, e.version
          LIMIT ${limit}`.pipe(
        Effect.map((rows) =>
          rows.map((row) => ({
            position: { tx: row.tx, jobId: row.jobId, version: row.version } satisfies StreamPosition,
            event: toJobEvent(row)
          }))
        ),
        Effect.orDie
      )

    /** The position before every event not yet ended now: where a stream that starts "from now" begins. */
    const streamNow = sql<{ readonly xmin: string }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`.pipe(
      Effect.map((rows): StreamPosition => ({ tx: rows[0]!.xmin, jobId: "00000000-0000-0000-0000-000000000000", version: 0 })),
      Effect.orDie
    )

    /** The current outcome of many jobs in one query (unknown ids are absent). */
    const outcomes = (ids: ReadonlyArray<JobId>) =>
      ids.length === 0
        ? Effect.succeed<ReadonlyArray<JobOutcome>>([])
        : sql<OutcomeRow>`SELECT j.id, j.status, j.result, j.error_code AS "errorCode", j.error_message AS "errorMessage",
                j.version, j.finished_at AS "finishedAt"
              FROM ${jobs} j WHERE j.id = ANY(${ids}::uuid[])`.pipe(
          Effect.map((rows) => rows.map(toOutcome)),
          Effect.orDie
        )

    type Holder = { readonly workerId?: string | undefined; readonly message?: string | null | undefined }

    /** claimed → running. */
    const start = (id: JobId, options: Holder = {}) =>
      transitionOrInvalid({
        id,
        to: "running",
        workerId: options.workerId,
        change: { kind: "start" },
        message: options.message
      })

    /** claimed|running → completed with `resultJson` (JSON text); progress ends at 100. */
    const complete = (id: JobId, options: Holder & { readonly resultJson: string }) =>
      transitionOrInvalid({
        id,
        to: "completed",
        workerId: options.workerId,
        change: { kind: "complete", resultJson: options.resultJson },
        message: options.message
      })

    /**
     * `complete` for many jobs of one worker in one statement (one commit, one doorbell): the worker loop's group
     * commit. Answers, per input item and in its order, whether the job completed or why not. Rows are locked in
     * id order, so concurrent batches cannot deadlock on each other.
     */
    const completeMany = (
      workerId: string | undefined,
      items: ReadonlyArray<{ readonly id: JobId; readonly resultJson: string; readonly message: string | null }>
    ): Effect.Effect<ReadonlyArray<Either.Either<JobId, InvalidTransition | NotJobHolder | JobNotFound>>> =>
      Effect.gen(function*() {
        if (items.length === 0) return []
        const rows = yield* sql<{ readonly answers: ReadonlyArray<Completed> | null }>`
          SELECT ${completeManyFunction}(${workerId ?? null}::text, ${items.map((i) => i.id)}::uuid[],
            ${items.map((i) => i.resultJson)}::text[], ${items.map((i) => i.message)}::text[],
            ${allowedFrom("completed")}::text[]) AS answers`.pipe(Effect.orDie)
        const byId = new Map((rows[0]!.answers ?? []).map((row) => [row.id, row]))
        const answers: Array<Either.Either<JobId, InvalidTransition | NotJobHolder | JobNotFound>> = []
        for (const item of items) {
          const row = byId.get(item.id)
          if (row === undefined) {
            answers.push(Either.left(new JobNotFound({ id: item.id })))
          } else if (row.event !== null) {
            yield* local.publish(toJobEvent(eventRowOf(row.event, row.result)))
            answers.push(Either.right(item.id))
          } else if (
            workerId !== undefined && (row.foundStatus === "claimed" || row.foundStatus === "running") &&
            row.foundWorker !== workerId
          ) {
            answers.push(Either.left(new NotJobHolder({ id: item.id, workerId })))
          } else {
            answers.push(Either.left(new InvalidTransition({ id: item.id, from: row.foundStatus, to: "completed" })))
          }
        }
        return answers
      })

    /** claimed|running → failed, for good. */
    const fail = (id: JobId, options: Holder & { readonly code: string | null; readonly error: string }) =>
      transitionOrInvalid({
        id,
        to: "failed",
        workerId: options.workerId,
        change: { kind: "fail", code: options.code, error: options.error },
        message: options.message
      })

    /**
     * claimed|running → scheduled (or pending when `delayMs` is 0): the attempt failed and another one follows.
     * The worker lets go of the job; the error of the attempt stays on the job and in the event.
     */
    const retry = (
      id: JobId,
      options: Holder & { readonly delayMs: number; readonly code: string | null; readonly error: string }
    ) =>
      transitionOrInvalid({
        id,
        to: options.delayMs > 0 ? "scheduled" : "pending",
        workerId: options.workerId,
        change: { kind: "retry", delayMs: options.delayMs, code: options.code, error: options.error },
        message: options.message
      })

    /** claimed|running → canceled: the worker acknowledges a cancel request (or gives the job up as canceled). */
    const markCanceled = (id: JobId, options: Holder = {}) =>
      transitionOrInvalid({
        id,
        to: "canceled",
        workerId: options.workerId,
        change: { kind: "finish" },
        message: options.message
      })

    /**
     * Cancel: a job nobody holds (scheduled|pending) is canceled at once; a held one (claimed|running) gets
     * `cancel_requested` and its worker ends it; a terminal one is `InvalidTransition`.
     */
    const cancel = (
      id: JobId,
      options: { readonly owner?: string | undefined; readonly message?: string | undefined } = {}
    ): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> => {
      const held = (status: JobStatus) => status === "claimed" || status === "running"
      const requestCancel = transition({
        id,
        from: ["claimed", "running"],
        owner: options.owner,
        change: { kind: "request_cancel" },
        message: options.message
      }).pipe(
        // already requested: nothing changes
        Effect.catchTag("TransitionRefused", (again): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> =>
          held(again.found) ? get(id, options.owner) : new InvalidTransition({ id, from: again.found, to: "canceled" }))
      )
      return transition({
        id,
        to: "canceled",
        from: ["scheduled", "pending"],
        owner: options.owner,
        change: { kind: "finish" },
        message: options.message
      }).pipe(
        Effect.catchTag("TransitionRefused", (refused): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> =>
          held(refused.found) ? requestCancel : new InvalidTransition({ id, from: refused.found, to: "canceled" }))
      )
    }

    /** scheduled|pending → deleted; a job a worker holds (or a terminal one) is `InvalidTransition`. */
    const remove = (id: JobId, options: { readonly owner?: string | undefined; readonly message?: string | undefined } = {}) =>
      transitionOrInvalid({
        id,
        to: "deleted",
        owner: options.owner,
        change: { kind: "finish" },
        message: options.message
      })

    return {
      start,
      complete,
      completeMany,
      fail,
      retry,
      markCanceled,
      cancel,
      remove,
      insert,
      get,
      status,
      exists,
      visible,
      listPage,
      listAfter,
      transition,
      transitionOrInvalid,
      changedJob,
      claim,
      eventsOf,
      eventsAfter,
      streamAfter,
      streamNow,
      outcomes
    } as const
  })
}) {}
