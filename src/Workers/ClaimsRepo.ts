import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { JobId } from "../Domain/JobId.js"
import { JobStatus } from "../Domain/JobStatus.js"
import type { ClaimedRow } from "../internal/rows.js"
import { DbJobId } from "../internal/rows.js"
import { ClaimedJob } from "../Domain/Worker.js"

export type { ClaimedRow } from "../internal/rows.js"

/** The columns of a claim's rows that `claimedRows` reads, from a relation aliased `j`. */
export const claimedColumns = `j.id, j.name, j.queue, j.payload, j.priority, j.attempt, j.max_attempts AS "maxAttempts",
  j.timeout_ms::float8 AS "timeoutMs", j.lease_expires_at AS "leaseExpiresAt", j.version, j.traceparent, j.tracestate,
  extract(epoch FROM j.claimed_at - j.scheduled_at)::float8 AS "waitSeconds"`

/**
 * A claim's rows, read by hand: the claim path runs once per batch of a busy worker, and decoding every column of
 * the whole row through its schema (dates, progress, errors) took a tenth of a worker's time in the harness's
 * lifecycle scenario. The columns come from our own function's `SETOF jobs`: their types are PostgreSQL's.
 */
export const claimedRows = (rows: ReadonlyArray<Record<string, unknown>>): ReadonlyArray<ClaimedRow> =>
  rows.map((row) => ({
    id: row["id"] as JobId,
    name: row["name"] as string,
    queue: row["queue"] as string,
    payload: row["payload"],
    priority: row["priority"] as number,
    attempt: row["attempt"] as number,
    maxAttempts: row["maxAttempts"] as number,
    timeoutSeconds: row["timeoutMs"] === null ? null : (row["timeoutMs"] as number) / 1000,
    leaseExpiresAt: row["leaseExpiresAt"] === null ? null : DateTime.unsafeFromDate(row["leaseExpiresAt"] as Date),
    version: row["version"] as number,
    traceparent: (row["traceparent"] ?? null) as string | null,
    tracestate: (row["tracestate"] ?? null) as string | null,
    waitSeconds: typeof row["waitSeconds"] === "number" ? Math.max(0, row["waitSeconds"]) : undefined
  }))

/** The `ClaimedJob` a worker is sent of a claimed row, leased for a heartbeat every `heartbeatMs`. */
export const claimedJobOf = (job: ClaimedRow, heartbeatMs: number) =>
  new ClaimedJob({
    // only when the job has one: the answer of a claim without trace context is as it was
    ...(job.traceparent === null ? {} : { traceparent: job.traceparent }),
    ...(job.tracestate === null ? {} : { tracestate: job.tracestate }),
    id: job.id,
    name: job.name,
    queue: job.queue,
    payload: job.payload,
    priority: job.priority,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    timeoutSeconds: job.timeoutSeconds,
    leaseExpiresAt: job.leaseExpiresAt ?? DateTime.unsafeMake(0),
    version: job.version,
    heartbeatSeconds: heartbeatMs / 1000
  }, true)

/** What a set-based change (`job_bulk`) changed. */
export const Reaped = Schema.Struct({ id: DbJobId, status: JobStatus, previousStatus: JobStatus })
export type Reaped = typeof Reaped.Type

/** The answer of a `job_bulk` call. */
export const decodeReaped = Schema.decodeUnknown(Schema.Array(Reaped))

const HeartbeatRow = Schema.Struct({ known: Schema.Boolean, cancelRequested: Schema.Array(DbJobId) })
const decodeHeartbeat = Schema.decodeUnknown(Schema.Tuple(HeartbeatRow))

export interface ClaimOptions {
  readonly workerId: string
  readonly queues: ReadonlyArray<string>
  readonly names?: ReadonlyArray<string> | undefined
  readonly limit: number
  readonly leaseMs: number
  readonly heartbeatIntervalMs?: number | undefined
  /** The caller's clock; the database's by default. */
  readonly now?: Date | undefined
  /** Claim and start at once (`pending` → `running`): for workers that run a job the moment they take it. */
  readonly start?: boolean | undefined
}

/** The SQL of a worker's leases: claim (`job_claim`), heartbeat, release (`job_bulk`). `SqlError`s are defects. */
export class ClaimsRepo extends Effect.Service<ClaimsRepo>()("jobwatch/ClaimsRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const workers = sql(`${schema}.workers`)
    const claimFunction = sql(`${schema}.job_claim`)
    const bulkFunction = sql(`${schema}.job_bulk`)

    /**
     * Claims up to `limit` pending jobs of `queues` (and `names`), priority first then oldest, skipping jobs other
     * claimers hold locked, and leases them to `workerId` for `leaseMs` from `now`. The same call registers the
     * worker (or refreshes its registration): what it serves, its heartbeat interval, and that it was seen now.
     */
    const claim = (options: ClaimOptions): Effect.Effect<ReadonlyArray<ClaimedRow>> =>
      sql`SELECT ${sql.literal(claimedColumns)}
          FROM ${claimFunction}(${options.workerId}::text, ${options.queues}::text[], ${options.names ?? null}::text[],
            ${options.limit}::int, ${options.leaseMs}::int,
            ${Math.max(1, Math.round(options.heartbeatIntervalMs ?? options.leaseMs / 1.5))}::int,
            ${options.now ?? null}::timestamptz, ${options.start === true}::boolean) j
          ORDER BY j.priority DESC, j.id`.pipe(
        Effect.map(claimedRows),
        Effect.orDie
      )

    /**
     * Marks the worker alive and extends the leases of its held jobs from `now`; answers whether it is known and
     * which of its jobs have a cancellation request. (A lease is not an event: no version changes.)
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
          Effect.flatMap(decodeHeartbeat),
          Effect.map(([row]) => row),
          Effect.orDie
        )

    /**
     * A worker shutting down lets go of its held jobs (`ids`, or all): back to `pending` without using up the attempt
     * (or `canceled` when that was requested), so that another worker takes them at once.
     */
    const release = (workerId: string, ids?: ReadonlyArray<JobId>) =>
      sql`SELECT id, status, previous_status AS "previousStatus"
          FROM ${bulkFunction}('release', NULL, NULL, ${workerId}::text, ${ids ?? null}::uuid[])`.pipe(
        Effect.flatMap(decodeReaped),
        Effect.orDie,
        Effect.withSpan("ClaimsRepo.release")
      )

    return { claim, heartbeat, release } as const
  })
}) {}
