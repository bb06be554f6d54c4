import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidTransition, JobNotFound, NotJobHolder, ProgressRegression } from "../Domain/Errors.js"
import type { JobInfo } from "../Domain/Job.js"
import { JobId } from "../Domain/JobId.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { JobStatus as JobStatusSchema } from "../Domain/JobStatus.js"
import { jobColumns } from "../internal/rows.js"
import { JobsRepo } from "../Jobs/JobsRepo.js"

/** What a set-based reaper statement changed. */
export interface Reaped {
  readonly id: JobId
  readonly status: JobStatus
  readonly previousStatus: JobStatus
}

const ReapedRow = Schema.Struct({ id: JobId, status: JobStatusSchema, previousStatus: JobStatusSchema })
const decodeReaped = Schema.decodeUnknown(Schema.Array(ReapedRow))
const HeartbeatRow = Schema.Struct({ known: Schema.Boolean, cancelRequested: Schema.Array(JobId) })
const ProgressFound = Schema.Struct({
  foundStatus: JobStatusSchema,
  foundWorker: Schema.NullOr(Schema.String),
  foundPercent: Schema.Number,
  changed: Schema.Boolean
})

/** A progress report, validated (percent clamped to 0–100). */
export interface ProgressWrite {
  readonly percent: number
  readonly step?: string | undefined
  readonly message?: string | undefined
  /** JSON text. */
  readonly dataJson?: string | undefined
}

/** Only this worker's job (when given); `now` is the caller's clock. */
export interface Acting {
  readonly workerId?: string | undefined
  readonly now: Date
}

/** The SQL of workers, leases, retries, the reaper and progress writes. `SqlError`s are defects here. */
export class WorkersRepo extends Effect.Service<WorkersRepo>()("jobwatch/WorkersRepo", {
  dependencies: [JobsRepo.Default],
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const repo = yield* JobsRepo
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const events = sql(`${schema}.job_events`)
    const workers = sql(`${schema}.workers`)
    const columns = sql.literal(jobColumns)
    const noPosition = sql.literal(`NULL::int AS "queuePosition"`)

    const retryDelayMs = sql(`${schema}.job_retry_delay_ms`)

    /**
     * The end of an attempt that did not succeed, for job `j` (as `job_transition`'s `attempt_failed`, for many
     * jobs): another attempt follows when attempts remain and no cancellation was requested, `scheduled` after the
     * job's backoff (randomly jittered) or, without `backoff`, `pending` at once; otherwise `failed`.
     */
    const attemptEnd = (now: Date, backoff: boolean) => {
      const retried = sql`(NOT j.cancel_requested AND j.attempt < j.max_attempts)`
      const delay = backoff
        ? sql`${retryDelayMs}(j.backoff_base_ms, j.backoff_max_ms, j.backoff_multiplier, j.attempt, random())`
        : sql`0`
      return {
        status: sql`CASE WHEN ${retried} THEN CASE WHEN ${delay} > 0 THEN 'scheduled' ELSE 'pending' END ELSE 'failed' END`,
        set: sql`, lease_expires_at = NULL, cancel_requested = false,
          worker_id = CASE WHEN ${retried} THEN NULL ELSE j.worker_id END,
          scheduled_at = CASE WHEN ${retried} THEN ${now}::timestamptz + ${delay} * interval '1 millisecond'
            ELSE j.scheduled_at END,
          finished_at = CASE WHEN ${retried} THEN NULL ELSE now() END`
      }
    }

    /**
     * The holder's `fail`: another attempt with backoff when `retryable` and attempts remain, else `failed` for good.
     */
    const failAttempt = (
      id: JobId,
      options: Acting & {
        readonly code: string | null
        readonly error: string
        readonly retryable: boolean
        readonly message?: string | null | undefined
        readonly jitter: number
      }
    ) => {
      return repo.transitionOrInvalid({
        id,
        to: "failed",
        from: ["claimed", "running"],
        workerId: options.workerId,
        change: {
          kind: "attempt_failed",
          retryable: options.retryable,
          now: options.now,
          jitter: options.jitter,
          code: options.code,
          error: options.error
        },
        message: options.message
      })
    }

    /**
     * Marks the worker alive and extends the leases of its held jobs from `now`; answers whether it is known and
     * which of its jobs have a cancellation request.
     */
    const heartbeat = (workerId: string, now: Date) =>
      sql`
        WITH w AS (
          UPDATE ${workers} SET last_seen_at = ${now}::timestamptz WHERE id = ${workerId} RETURNING lease_ms
        ), held AS (
          UPDATE ${jobs} j SET lease_expires_at = ${now}::timestamptz + w.lease_ms * interval '1 millisecond'
          FROM w
          WHERE j.worker_id = ${workerId} AND j.status IN ('claimed', 'running')
          RETURNING j.id, j.cancel_requested
        )
        SELECT EXISTS (SELECT 1 FROM w) AS known,
          coalesce((SELECT array_agg(id ORDER BY id) FROM held WHERE cancel_requested), '{}') AS "cancelRequested"`
        .pipe(
          Effect.flatMap(Schema.decodeUnknown(Schema.Array(HeartbeatRow))),
          Effect.map((rows) => rows[0]!),
          Effect.orDie
        )

    /**
     * A set-based change of the jobs `cand` selects (`id`, `status`, `worker_id`, locked): the status `status`,
     * extra assignments `set`, and per job an event with `message` (an expression on the updated row `u`) and, when
     * `withError`, the job's (new) error.
     */
    const bulk = (
      cand: Statement.Fragment,
      status: Statement.Fragment,
      set: Statement.Fragment,
      message: Statement.Fragment,
      withError = false
    ) =>
      sql`
        WITH cand AS (${cand}), upd AS (
          UPDATE ${jobs} j SET status = ${status}, version = j.version + 1, updated_at = now() ${set}
          FROM cand WHERE j.id = cand.id
          RETURNING j.*, cand.status AS previous_status, cand.worker_id AS previous_worker
        ), ev AS (
          INSERT INTO ${events} (job_id, version, type, status, previous_status, progress, previous_progress, step,
            message, attempt, error_code, error_message)
          SELECT u.id, u.version, 'job.status.changed', u.status, u.previous_status, u.progress_percent,
            u.progress_percent, u.progress_step, ${message}, u.attempt,
            CASE WHEN ${withError} AND u.status <> 'canceled' THEN u.error_code END,
            CASE WHEN ${withError} AND u.status <> 'canceled' THEN u.error_message END
          FROM upd u
        )
        SELECT id, status, previous_status AS "previousStatus" FROM upd`.pipe(
        Effect.flatMap(decodeReaped),
        Effect.orDie
      )

    /** Ends attempts of held jobs selected by `where`: canceled if requested, else retried or failed with `code`. */
    const endHeld = (
      where: Statement.Fragment,
      now: Date,
      limit: number,
      code: string,
      error: Statement.Fragment,
      backoff: boolean
    ) => {
      const end = attemptEnd(now, backoff)
      return bulk(
        sql`SELECT id, status, worker_id FROM ${jobs} j
            WHERE j.status IN ('claimed', 'running') AND ${where}
            ORDER BY j.lease_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
        sql`CASE WHEN j.cancel_requested THEN 'canceled' ELSE ${end.status} END`,
        sql`${end.set},
          error_code = CASE WHEN j.cancel_requested THEN j.error_code ELSE ${code} END,
          error_message = CASE WHEN j.cancel_requested THEN j.error_message ELSE ${error} END`,
        sql`CASE WHEN u.status = 'canceled' THEN 'canceled: its worker stopped after the cancel request'
            ELSE u.error_message END`,
        true
      )
    }

    /**
     * Jobs whose lease expired before `now` (their worker died or hung): back to `pending` when an attempt is left,
     * else `failed` with code `worker_lost`; a job whose cancellation was requested ends `canceled`.
     */
    const reapExpiredLeases = (now: Date, limit = 1000) =>
      endHeld(
        sql`j.lease_expires_at < ${now}::timestamptz`,
        now,
        limit,
        "worker_lost",
        sql`'the lease of worker ' || coalesce(j.worker_id, '?') || ' expired at ' || j.lease_expires_at
          || ' without a heartbeat'`,
        // back to the queue at once: the backoff is for failures of the job, not of its worker
        false
      ).pipe(Effect.withSpan("WorkersRepo.reapExpiredLeases"))

    /** Attempts running longer than their job's timeout: retried with backoff, or `failed` with code `timeout`. */
    const reapTimeouts = (now: Date, limit = 1000) =>
      endHeld(
        sql`j.timeout_ms IS NOT NULL AND j.claimed_at + j.timeout_ms * interval '1 millisecond' < ${now}::timestamptz`,
        now,
        limit,
        "timeout",
        sql`'attempt ' || j.attempt || ' ran longer than its timeout of ' || (j.timeout_ms / 1000.0)::float8 || ' s'`,
        true
      ).pipe(Effect.withSpan("WorkersRepo.reapTimeouts"))

    /** Due `scheduled` jobs become `pending`. */
    const promoteDue = (now: Date, limit = 1000) =>
      bulk(
        sql`SELECT id, status, worker_id FROM ${jobs}
            WHERE status = 'scheduled' AND scheduled_at <= ${now}::timestamptz
            ORDER BY scheduled_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
        sql`'pending'`,
        sql``,
        sql`NULL`
      ).pipe(Effect.withSpan("WorkersRepo.promoteDue"))

    /**
     * What the reaper's next wake-up depends on: when the next `scheduled` job falls due or the next lease expires
     * (`at`), and the shortest heartbeat interval of the known workers (how soon a new lease could expire).
     */
    const nextDue = sql<{ at: Date | null; heartbeatMs: number | null }>`SELECT least(
        (SELECT min(scheduled_at) FROM ${jobs} WHERE status = 'scheduled'),
        (SELECT min(lease_expires_at) FROM ${jobs} WHERE status IN ('claimed', 'running'))
      ) AS at, (SELECT min(heartbeat_interval_ms) FROM ${workers})::int AS "heartbeatMs"`
      .pipe(
        Effect.map((rows) => ({
          at: Option.fromNullable(rows[0]?.at ?? null),
          heartbeatMs: Option.fromNullable(rows[0]?.heartbeatMs ?? null)
        })),
        Effect.orDie
      )

    /** Forgets workers silent since before `cutoff`; answers their ids. */
    const forgetWorkers = (cutoff: Date) =>
      sql<{ id: string }>`DELETE FROM ${workers} WHERE last_seen_at < ${cutoff}::timestamptz RETURNING id`.pipe(
        Effect.map((rows) => rows.map((row) => row.id)),
        Effect.orDie
      )

    /**
     * A worker shutting down lets go of its held jobs (`ids`, or all): back to `pending` without using up the attempt
     * (or `canceled` when that was requested), so that another worker takes them at once.
     */
    const release = (workerId: string, ids?: ReadonlyArray<JobId>) =>
      bulk(
        sql`SELECT id, status, worker_id FROM ${jobs}
            WHERE worker_id = ${workerId} AND status IN ('claimed', 'running')
              ${ids === undefined ? sql`` : sql`AND id = ANY(${ids}::uuid[])`}
            FOR UPDATE`,
        sql`CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'pending' END`,
        sql`, worker_id = NULL, lease_expires_at = NULL, cancel_requested = false,
          attempt = CASE WHEN j.cancel_requested THEN j.attempt ELSE greatest(j.attempt - 1, 0) END,
          finished_at = CASE WHEN j.cancel_requested THEN now() END`,
        sql`CASE WHEN u.status = 'canceled' THEN 'canceled: its worker stopped after the cancel request'
            ELSE 'released by worker ' || u.previous_worker || ' at shutdown' END`
      ).pipe(Effect.withSpan("WorkersRepo.release"))

    /**
     * Writes a progress report, keeping the maximum: the job must be `claimed` or `running` (held by `workerId` when
     * given) and not further than `percent` already (`ProgressRegression` otherwise). Progress above 0 makes a
     * `claimed` job `running`. The event (`job.progress`) is marked `milestone` when the report is the job's first,
     * crosses 25, 50, 75 or 100, or moved 10 points or more since the last marked one.
     */
    const writeProgress = (
      id: JobId,
      report: ProgressWrite,
      acting: Acting
    ): Effect.Effect<JobInfo, JobNotFound | InvalidTransition | NotJobHolder | ProgressRegression> => {
      const p = sql`${report.percent}::float8`
      const starts = sql`(cur.status = 'claimed' AND ${p} > 0)`
      const milestone = sql`(cur.progress_marked IS NULL OR ${p} - cur.progress_marked >= 10
        OR floor(${p} / 25) > floor(cur.progress_marked / 25))`
      return sql`
        WITH cur AS (
          SELECT id, status, worker_id, progress_percent, progress_marked FROM ${jobs} WHERE id = ${id} FOR UPDATE
        ), upd AS (
          UPDATE ${jobs} j SET
            status = CASE WHEN ${starts} THEN 'running' ELSE j.status END,
            started_at = CASE WHEN ${starts} THEN ${acting.now}::timestamptz ELSE j.started_at END,
            progress_percent = ${p},
            progress_step = coalesce(${report.step ?? null}, j.progress_step),
            progress_message = coalesce(${report.message ?? null}, j.progress_message),
            progress_data = coalesce(${report.dataJson ?? null}::jsonb, j.progress_data),
            progress_updated_at = now(),
            progress_marked = CASE WHEN ${milestone} THEN ${p} ELSE j.progress_marked END,
            version = j.version + 1, updated_at = now()
          FROM cur
          WHERE j.id = cur.id AND cur.status IN ('claimed', 'running') AND cur.progress_percent <= ${p}
            ${acting.workerId === undefined ? sql`` : sql`AND cur.worker_id = ${acting.workerId}`}
          RETURNING j.*, cur.status AS previous_status, cur.progress_percent AS previous_progress,
            ${milestone} AS milestone, cur.id AS cur_id
        ), ev AS (
          INSERT INTO ${events} (job_id, version, type, status, previous_status, progress, previous_progress, step,
            message, attempt, milestone, data)
          SELECT id, version, 'job.progress', status, previous_status, progress_percent, previous_progress,
            progress_step, ${report.message ?? null}, attempt, milestone, ${report.dataJson ?? null}::jsonb
          FROM upd
          RETURNING *
        )
        SELECT cur.status AS "foundStatus", cur.worker_id AS "foundWorker", cur.progress_percent AS "foundPercent",
          j.id IS NOT NULL AS changed, ${columns}, ${noPosition}, row_to_json(e) AS event
        FROM cur LEFT JOIN upd j ON j.cur_id = cur.id LEFT JOIN ev e ON e.job_id = j.id`.pipe(
        Effect.flatMap((rows) =>
          Effect.gen(function*() {
            if (rows.length === 0) return yield* new JobNotFound({ id })
            const found = yield* Schema.decodeUnknown(ProgressFound)(rows[0]).pipe(Effect.orDie)
            if (!found.changed) {
              const held = found.foundStatus === "claimed" || found.foundStatus === "running"
              if (!held) return yield* new InvalidTransition({ id, from: found.foundStatus, to: "running" })
              if (acting.workerId !== undefined && found.foundWorker !== acting.workerId) {
                return yield* new NotJobHolder({ id, workerId: acting.workerId })
              }
              return yield* new ProgressRegression({ id, current: found.foundPercent, requested: report.percent })
            }
            return yield* repo.changedJob(rows)
          })
        ),
        Effect.catchTag("SqlError", Effect.die),
        Effect.withSpan("WorkersRepo.writeProgress")
      )
    }

    return {
      failAttempt,
      heartbeat,
      reapExpiredLeases,
      reapTimeouts,
      promoteDue,
      nextDue,
      forgetWorkers,
      release,
      writeProgress
    } as const
  })
}) {}
