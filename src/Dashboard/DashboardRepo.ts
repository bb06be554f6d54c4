import { SqlClient } from "@effect/sql"
import { Duration, Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { eventTypeOf, StoredEventType } from "../Domain/JobEvent.js"
import type { JobId } from "../Domain/JobId.js"
import { allStatuses, JobStatus } from "../Domain/JobStatus.js"
import { DbJobId } from "../internal/rows.js"

/** The most queues an overview reports: the busiest (most unfinished jobs, then most jobs), listed by name. */
export const OVERVIEW_QUEUES = 200
/** The most workers `workers` answers: the live ones first, then the most recently seen. */
export const DASHBOARD_WORKERS = 500
/** The most held jobs listed per worker (claim order); `heldCount` counts them all. */
export const HELD_PER_WORKER = 50
/** The most deliveries `jobDeliveries` answers, newest first. */
export const JOB_DELIVERIES = 100

export interface QueueOverview {
  readonly queue: string
  /**
   * Jobs by status: the unfinished statuses (`scheduled`, `pending`, `claimed`, `running`) as they are now, the
   * terminal ones (`completed`, `failed`, `canceled`, `deleted`) finished since the overview's `terminalSince`.
   */
  readonly counts: Readonly<Record<JobStatus, number>>
  /** When the oldest due pending job became due; null when none is pending. */
  readonly oldestPendingAt: Date | null
  /** Run time (finish − start, or − claim when never started) of the jobs completed since `terminalSince`. */
  readonly p50RunSeconds: number | null
  readonly p95RunSeconds: number | null
}

export interface MinuteCounts {
  readonly minute: Date
  readonly completed: number
  readonly failed: number
}

export interface DashboardOverview {
  /** The database's clock. */
  readonly now: Date
  /** The start of the window of the terminal counts, the run times and `perMinute`: the last hour's 60 minutes. */
  readonly terminalSince: Date
  /** At most `OVERVIEW_QUEUES` queues, by name. */
  readonly queues: ReadonlyArray<QueueOverview>
  /** How many queues the scope has (unfinished jobs, or jobs finished since `terminalSince`), beyond the cap too. */
  readonly totalQueues: number
  /** 60 entries, oldest first, ending with the current minute. */
  readonly perMinute: ReadonlyArray<MinuteCounts>
}

export interface HeldJob {
  readonly id: JobId
  readonly name: string
  readonly queue: string
  readonly status: "claimed" | "running"
  readonly leaseExpiresAt: Date | null
  readonly startedAt: Date | null
  readonly percent: number
}

export interface DashboardWorker {
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly names: ReadonlyArray<string> | null
  readonly heartbeatIntervalMs: number
  readonly leaseMs: number
  readonly registeredAt: Date
  readonly lastSeenAt: Date
  /** Heard of within `workerTimeout` (the reaper forgets the others). */
  readonly alive: boolean
  /** The jobs it holds (claimed or running; an owner's own only), at most `HELD_PER_WORKER`, in claim order. */
  readonly held: ReadonlyArray<HeldJob>
  /** How many jobs it holds (of the owner's, for an owner). */
  readonly heldCount: number
}

export interface DeliveryLogEntry {
  readonly attempt: number
  readonly startedAt: Date
  readonly durationMs: number
  /** The HTTP status answered; null when none was (a timeout, a refused connection). */
  readonly status: number | null
  readonly error: string | null
}

export interface JobDelivery {
  readonly id: string
  /** Null for the job's own callback. */
  readonly endpointId: string | null
  readonly url: string
  /** The event's envelope type (`job.completed`…); null when neither the event nor the row has one. */
  readonly type: string | null
  readonly version: number
  readonly status: "pending" | "succeeded" | "failed"
  readonly attempts: number
  readonly nextAttemptAt: Date
  readonly lastStatus: number | null
  readonly lastError: string | null
  readonly createdAt: Date
  readonly finishedAt: Date | null
  /** Its attempts, first first. */
  readonly log: ReadonlyArray<DeliveryLogEntry>
}

const JsonDate = Schema.DateFromString
const Counts = Schema.Record({ key: JobStatus, value: Schema.Number })

const OverviewRow = Schema.Struct({
  now: Schema.DateFromSelf,
  terminalSince: Schema.DateFromSelf,
  totalQueues: Schema.Number,
  queues: Schema.Array(Schema.Struct({
    queue: Schema.String,
    counts: Counts,
    oldestPendingAt: Schema.NullOr(JsonDate),
    p50RunSeconds: Schema.NullOr(Schema.Number),
    p95RunSeconds: Schema.NullOr(Schema.Number)
  })),
  perMinute: Schema.Array(Schema.Struct({ minute: JsonDate, completed: Schema.Number, failed: Schema.Number }))
})
const decodeOverview = Schema.decodeUnknown(Schema.Tuple(OverviewRow))

const WorkerRow = Schema.Struct({
  id: Schema.String,
  queues: Schema.Array(Schema.String),
  names: Schema.NullOr(Schema.Array(Schema.String)),
  heartbeatIntervalMs: Schema.Number,
  leaseMs: Schema.Number,
  registeredAt: Schema.DateFromSelf,
  lastSeenAt: Schema.DateFromSelf,
  alive: Schema.Boolean,
  held: Schema.Array(Schema.Struct({
    id: DbJobId,
    name: Schema.String,
    queue: Schema.String,
    status: Schema.Literal("claimed", "running"),
    leaseExpiresAt: Schema.NullOr(JsonDate),
    startedAt: Schema.NullOr(JsonDate),
    percent: Schema.Number
  })),
  heldCount: Schema.Number
})
const decodeWorkers = Schema.decodeUnknown(Schema.Array(WorkerRow))

const DeliveryRow = Schema.Struct({
  id: Schema.String,
  endpointId: Schema.NullOr(Schema.String),
  url: Schema.String,
  storedType: Schema.NullOr(Schema.String),
  eventType: Schema.NullOr(StoredEventType),
  eventStatus: Schema.NullOr(JobStatus),
  version: Schema.Number,
  status: Schema.Literal("pending", "succeeded", "failed"),
  attempts: Schema.Number,
  nextAttemptAt: Schema.DateFromSelf,
  lastStatus: Schema.NullOr(Schema.Number),
  lastError: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromSelf,
  finishedAt: Schema.NullOr(Schema.DateFromSelf)
})
const decodeDeliveries = Schema.decodeUnknown(Schema.Array(DeliveryRow))
const AttemptRow = Schema.Struct({
  deliveryId: Schema.String,
  attempt: Schema.Number,
  startedAt: Schema.DateFromSelf,
  durationMs: Schema.Number,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String)
})
const decodeAttempts = Schema.decodeUnknown(Schema.Array(AttemptRow))

/**
 * The dashboard's reads. Every method takes the caller's owner scope: `undefined` (an admin) sees everything, an
 * owner only its own jobs (and what they touch). `SqlError`s and bad rows are defects.
 */
/** A webhook endpoint's health: failing since when (none: healthy), and how many deliveries wait. */
export interface EndpointHealth {
  readonly failingSince: Date | null
  readonly pending: number
}
const decodeHealth = Schema.decodeUnknown(Schema.Array(Schema.Struct({
  id: Schema.String,
  failingSince: Schema.NullOr(Schema.DateFromSelf),
  pending: Schema.Number
})))

export class DashboardRepo extends Effect.Service<DashboardRepo>()("jobwatch/DashboardRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema, workerTimeout } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const workersTable = sql(`${schema}.workers`)
    const deliveriesTable = sql(`${schema}.webhook_deliveries`)
    const attemptsTable = sql(`${schema}.webhook_attempts`)
    const endpointsTable = sql(`${schema}.webhook_endpoints`)
    const events = sql(`${schema}.job_events`)
    const workerTimeoutMs = Duration.toMillis(workerTimeout)

    const ownerIs = (owner: string | undefined) => (owner === undefined ? sql`` : sql`AND owner = ${owner}`)
    // the first of the last hour's 60 minutes; written out (not a subquery) so the planner estimates the range
    const since = sql.literal("(date_trunc('minute', now()) - interval '59 minutes')")

    /**
     * Queue counts, run times and completions per minute, in one statement (one snapshot). Terminal counts over all
     * time would scan the table (57–128 ms on 100k jobs): they cover the last hour, read with the run times and the
     * minutes in one range of `jobs_finished`; the unfinished jobs come from `jobs_by_status`.
     */
    const overview = (owner: string | undefined) =>
      sql`
        WITH finished AS MATERIALIZED (
          SELECT queue, status, finished_at,
            extract(epoch FROM finished_at - coalesce(started_at, claimed_at))::float8 AS run
          FROM ${jobs}
          WHERE status IN ('completed', 'failed', 'canceled', 'deleted') AND finished_at >= ${since}
            ${ownerIs(owner)}
        ), counts AS (
          SELECT queue, status, count(*)::int AS n,
            min(coalesce(scheduled_at, created_at)) FILTER (WHERE status = 'pending') AS oldest
          FROM ${jobs} WHERE status IN ('scheduled', 'pending', 'claimed', 'running') ${ownerIs(owner)}
          GROUP BY queue, status
          UNION ALL
          SELECT queue, status, count(*)::int, NULL FROM finished GROUP BY queue, status
        ), queues AS (
          SELECT queue, jsonb_object_agg(status, n) AS counts, min(oldest) AS oldest,
            sum(n) FILTER (WHERE status IN ('scheduled', 'pending', 'claimed', 'running')) AS unfinished,
            sum(n) AS total
          FROM counts GROUP BY queue
        ), shown AS (
          SELECT * FROM queues ORDER BY unfinished DESC NULLS LAST, total DESC, queue LIMIT ${OVERVIEW_QUEUES}
        ), runs AS (
          SELECT queue, percentile_cont(0.5) WITHIN GROUP (ORDER BY run) AS p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY run) AS p95
          FROM finished WHERE status = 'completed' AND run IS NOT NULL GROUP BY queue
        ), minutes AS (
          SELECT date_trunc('minute', finished_at) AS minute,
            count(*) FILTER (WHERE status = 'completed')::int AS completed,
            count(*) FILTER (WHERE status = 'failed')::int AS failed
          FROM finished GROUP BY 1
        )
        SELECT now() AS now, ${since} AS "terminalSince",
          (SELECT count(*)::int FROM queues) AS "totalQueues",
          coalesce((
            SELECT json_agg(json_build_object(
                'queue', s.queue,
                -- every status, zero when absent
                'counts', (SELECT jsonb_object_agg(z, 0) FROM unnest(${allStatuses}::text[]) z) || s.counts,
                'oldestPendingAt', s.oldest, 'p50RunSeconds', r.p50, 'p95RunSeconds', r.p95
              ) ORDER BY s.queue)
            FROM shown s LEFT JOIN runs r ON r.queue = s.queue
          ), '[]') AS queues,
          (SELECT json_agg(json_build_object('minute', m, 'completed', coalesce(x.completed, 0),
              'failed', coalesce(x.failed, 0)) ORDER BY m)
            FROM generate_series(${since}, date_trunc('minute', now()), interval '1 minute') m
            LEFT JOIN minutes x ON x.minute = m) AS "perMinute"`.pipe(
        Effect.flatMap(decodeOverview),
        Effect.map(([row]): DashboardOverview => row),
        Effect.orDie,
        Effect.withSpan("DashboardRepo.overview")
      )

    /**
     * The workers, with the jobs each holds (`jobs_held`). An owner sees its own workers (`<owner>` and
     * `<owner>:…`, as `User.owns`) and those holding one of its jobs, with only its own jobs held. `alive` is the
     * reaper's rule (`forgetWorkers`): seen within `workerTimeout`, on the database's clock.
     */
    const workers = (owner: string | undefined) => {
      const whose = owner === undefined ? sql`` : sql`
        WHERE w.id = ${owner} OR starts_with(w.id, ${`${owner}:`})
          OR w.id IN (SELECT worker_id FROM ${jobs} WHERE status IN ('claimed', 'running') AND owner = ${owner})`
      return sql`
        WITH shown AS (
          SELECT w.id, w.queues, w.names, w.heartbeat_interval_ms, w.lease_ms, w.registered_at, w.last_seen_at
          FROM ${workersTable} w
          ${whose}
          -- alive first, then the most recently seen: one order, since alive is "seen after the cutoff"
          ORDER BY w.last_seen_at DESC, w.id
          LIMIT ${DASHBOARD_WORKERS}
        ), held AS (
          -- the held jobs of the workers shown, by a join (a filter "= ANY (ids)" compares each job with every id)
          SELECT worker_id, count(*)::int AS total,
            json_agg(json_build_object('id', id, 'name', name, 'queue', queue, 'status', status,
                'leaseExpiresAt', lease_expires_at, 'startedAt', started_at, 'percent', progress_percent)
              ORDER BY id) FILTER (WHERE n <= ${HELD_PER_WORKER}) AS jobs
          FROM (
            SELECT j.worker_id, j.id, j.name, j.queue, j.status, j.lease_expires_at, j.started_at, j.progress_percent,
              row_number() OVER (PARTITION BY j.worker_id ORDER BY j.id) AS n
            FROM ${jobs} j JOIN shown ON shown.id = j.worker_id
            WHERE j.status IN ('claimed', 'running') ${owner === undefined ? sql`` : sql`AND j.owner = ${owner}`}
          ) h
          GROUP BY worker_id
        )
        SELECT s.id, s.queues, s.names, s.heartbeat_interval_ms::float8 AS "heartbeatIntervalMs",
          s.lease_ms::float8 AS "leaseMs", s.registered_at AS "registeredAt", s.last_seen_at AS "lastSeenAt",
          s.last_seen_at >= now() - ${workerTimeoutMs} * interval '1 millisecond' AS alive,
          coalesce(h.jobs, '[]') AS held, coalesce(h.total, 0) AS "heldCount"
        FROM shown s LEFT JOIN held h ON h.worker_id = s.id
        ORDER BY s.last_seen_at DESC, s.id`.pipe(
        Effect.flatMap(decodeWorkers),
        Effect.map((rows): ReadonlyArray<DashboardWorker> => rows),
        Effect.orDie,
        Effect.withSpan("DashboardRepo.workers")
      )
    }

    /**
     * The webhook deliveries of one job (`webhook_deliveries_by_job`), newest first, with their attempts; for an
     * owner only when the job is the owner's (else none). `type` is the event's envelope type, as its body says.
     */
    const jobDeliveries = (jobId: string, owner: string | undefined) =>
      Effect.gen(function*() {
        const ownersJob = owner === undefined
          ? sql``
          : sql`AND EXISTS (SELECT 1 FROM ${jobs} j WHERE j.id = ${jobId}::uuid AND j.owner = ${owner})`
        const rows = yield* sql`
          SELECT d.id, d.endpoint_id AS "endpointId", d.url, d.type AS "storedType", e.type AS "eventType",
            e.status AS "eventStatus", d.version, d.status, d.attempts, d.next_attempt_at AS "nextAttemptAt",
            d.last_status AS "lastStatus", d.last_error AS "lastError", d.created_at AS "createdAt",
            d.finished_at AS "finishedAt"
          FROM ${deliveriesTable} d LEFT JOIN ${events} e ON e.job_id = d.job_id AND e.version = d.version
          WHERE d.job_id = ${jobId}::uuid
            ${ownersJob}
          ORDER BY d.id DESC
          LIMIT ${JOB_DELIVERIES}`.pipe(Effect.flatMap(decodeDeliveries))
        const log = rows.length === 0 ? [] : yield* sql`
          SELECT delivery_id AS "deliveryId", attempt, started_at AS "startedAt", duration_ms AS "durationMs",
            status_code AS status, error
          FROM ${attemptsTable} WHERE delivery_id = ANY(${rows.map((r) => r.id)}::uuid[])
          ORDER BY delivery_id, attempt`.pipe(Effect.flatMap(decodeAttempts))
        return rows.map((r): JobDelivery => ({
          id: r.id,
          endpointId: r.endpointId,
          url: r.url,
          // a row from before sql/0015 whose event is gone keeps its own type
          type: r.eventType !== null && r.eventStatus !== null ? eventTypeOf(r.eventType, r.eventStatus) : r.storedType,
          version: r.version,
          status: r.status,
          attempts: r.attempts,
          nextAttemptAt: r.nextAttemptAt,
          lastStatus: r.lastStatus,
          lastError: r.lastError,
          createdAt: r.createdAt,
          finishedAt: r.finishedAt,
          log: log.filter((l) => l.deliveryId === r.id).map(({ deliveryId: _, ...entry }) => entry)
        }))
      }).pipe(Effect.orDie, Effect.withSpan("DashboardRepo.jobDeliveries"))

    /**
     * The health of the caller's webhook endpoints (an admin's: all): since when each has been failing (none since
     * its last success), and its deliveries still to make (from the partial index of pending ones).
     */
    const endpointHealth = (owner: string | undefined) =>
      sql`
        SELECT w.id, w.failing_since AS "failingSince", coalesce(p.pending, 0) AS pending
        FROM ${endpointsTable} w
        LEFT JOIN (SELECT endpoint_id, count(*)::int AS pending FROM ${deliveriesTable}
          WHERE status = 'pending' GROUP BY endpoint_id) p ON p.endpoint_id = w.id
        WHERE true ${ownerIs(owner)}
        LIMIT 1000`.pipe(
        Effect.flatMap(decodeHealth),
        Effect.map((rows): ReadonlyMap<string, EndpointHealth> => new Map(rows.map(({ id, ...health }) => [id, health]))),
        Effect.orDie,
        Effect.withSpan("DashboardRepo.endpointHealth")
      )

    return { overview, workers, jobDeliveries, endpointHealth } as const
  })
}) {}
