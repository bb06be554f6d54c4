import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { DbJobId } from "../internal/rows.js"
import { JobStatus } from "../Domain/JobStatus.js"

const NextDue = Schema.Struct({ at: Schema.NullOr(Schema.DateFromSelf), heartbeatMs: Schema.NullOr(Schema.Number) })
const decodeNextDue = Schema.decodeUnknown(Schema.Tuple(NextDue))
/** What a set-based change changed, with each job's queue (for the metrics). */
const ReapedInQueue = Schema.Struct({ id: DbJobId, status: JobStatus, previousStatus: JobStatus, queue: Schema.String })
export type ReapedInQueue = typeof ReapedInQueue.Type
const decodeReaped = Schema.decodeUnknown(Schema.Array(ReapedInQueue))
const decodeForgotten = Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: Schema.String })))

type BulkKind = "expired_leases" | "timeouts" | "promote_due"

/** The reaper's SQL: its set-based changes are `job_bulk` calls (sql/functions). `SqlError`s are defects. */
export class ReaperRepo extends Effect.Service<ReaperRepo>()("jobwatch/ReaperRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const workers = sql(`${schema}.workers`)
    const types = sql(`${schema}.job_types`)
    const links = sql(`${schema}.job_type_workers`)
    const bulkFunction = sql(`${schema}.job_bulk`)

    const bulk = (kind: BulkKind, now: Date, limit: number) =>
      // a job's queue never changes: read by id beside the changes (a lookup each, never a scan)
      sql`SELECT b.id, b.status, b.previous_status AS "previousStatus", (SELECT j.queue FROM ${jobs} j WHERE j.id = b.id)
            AS queue
          FROM ${bulkFunction}(${kind}::text, ${now}::timestamptz, ${limit}::int, NULL, NULL) b`.pipe(
        Effect.flatMap(decodeReaped),
        Effect.orDie
      )

    /**
     * Jobs whose lease expired before `now` (their worker died or hung): back to `pending` when an attempt is left,
     * else `failed` with code `worker_lost`; a job whose cancellation was requested ends `canceled`.
     */
    const reapExpiredLeases = (now: Date, limit = 1000) =>
      bulk("expired_leases", now, limit).pipe(Effect.withSpan("ReaperRepo.reapExpiredLeases"))

    /** Attempts running longer than their job's timeout: retried with backoff, or `failed` with code `timeout`. */
    const reapTimeouts = (now: Date, limit = 1000) =>
      bulk("timeouts", now, limit).pipe(Effect.withSpan("ReaperRepo.reapTimeouts"))

    /** Due `scheduled` jobs become `pending`. */
    const promoteDue = (now: Date, limit = 1000) =>
      bulk("promote_due", now, limit).pipe(Effect.withSpan("ReaperRepo.promoteDue"))

    /**
     * What the reaper's next wake-up depends on: when the next `scheduled` job falls due or the next lease expires
     * (`at`), and the shortest heartbeat interval of the known workers (how soon a new lease could expire).
     */
    const nextDue = sql`SELECT least(
        (SELECT min(scheduled_at) FROM ${jobs} WHERE status = 'scheduled'),
        (SELECT min(lease_expires_at) FROM ${jobs} WHERE status IN ('claimed', 'running'))
      ) AS at, (SELECT min(heartbeat_interval_ms) FROM ${workers})::int AS "heartbeatMs"`
      .pipe(
        Effect.flatMap(decodeNextDue),
        Effect.map(([row]) => ({ at: Option.fromNullable(row.at), heartbeatMs: Option.fromNullable(row.heartbeatMs) })),
        Effect.orDie
      )

    /** Forgets workers silent since before `cutoff`; answers their ids. */
    const forgetWorkers = (cutoff: Date) =>
      sql`DELETE FROM ${workers} WHERE last_seen_at < ${cutoff}::timestamptz RETURNING id`.pipe(
        Effect.flatMap(decodeForgotten),
        Effect.map((rows) => rows.map((row) => row.id)),
        Effect.orDie
      )

    /**
     * The job library's orphans: job types no worker serves (their workers forgotten for silence, or never linked)
     * and no task waits for (pending or scheduled), soft-deleted; answers how many. Registering one again revives it.
     */
    const removeOrphanTypes = sql`UPDATE ${types} t SET deleted_at = now(), updated_at = now()
        WHERE t.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM ${links} l WHERE l.job_type_id = t.id)
          AND NOT EXISTS (SELECT 1 FROM ${jobs} j WHERE j.job_type_id = t.id AND j.status IN ('pending', 'scheduled'))
        RETURNING t.id`.pipe(
      Effect.map((rows) => rows.length),
      Effect.orDie
    )

    return { reapExpiredLeases, reapTimeouts, promoteDue, nextDue, forgetWorkers, removeOrphanTypes } as const
  })
}) {}
