import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import type { JobOutcome } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import type { JobId } from "../Domain/JobId.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { decodeEventRows, EventRow, eventColumns, toJobEvent } from "../internal/rows.js"
import { fromOutcomeJson, OutcomeJson } from "./Outcome.js"

/**
 * A position in the stream of all events: the writing transaction's id (a decimal xid8), then the job and version.
 * Positions are totally ordered; an event is "after" a position when its triple is greater.
 */
export interface StreamPosition {
  readonly tx: string
  readonly jobId: string
  readonly version: number
}

export interface StreamFilter {
  readonly owner?: string | undefined
  readonly statuses?: ReadonlyArray<JobStatus> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  /** One job's events only (a dashboard's job page). */
  readonly jobId?: string | undefined
}

const StreamRow = Schema.extend(EventRow, Schema.Struct({ tx: Schema.String }))
const TailRow = Schema.extend(
  StreamRow,
  Schema.Struct({ owner: Schema.NullOr(Schema.String), queue: Schema.String, name: Schema.String })
)
const decodeTailRows = Schema.decodeUnknown(Schema.Array(TailRow))
const toTailItems = (rows: ReadonlyArray<typeof TailRow.Type>) =>
  rows.map((row): TailItem => ({
    position: { tx: row.tx, jobId: row.jobId, version: row.version },
    event: toJobEvent(row),
    owner: row.owner,
    queue: row.queue,
    name: row.name
  }))

/** An event of the stream of all events, with its position and what a per-user stream filters its job by. */
export interface TailItem {
  readonly position: StreamPosition
  readonly event: JobEvent
  readonly owner: string | null
  readonly queue: string
  readonly name: string
}
const decodeOutcomeRows = Schema.decodeUnknown(Schema.Array(Schema.Struct({ outcome: OutcomeJson })))
const noJob = "00000000-0000-0000-0000-000000000000"
const decodeXmin = Schema.decodeUnknown(Schema.Tuple(Schema.Struct({ xmin: Schema.String })))

/** The reads of the event log (it is written by the SQL functions only). `SqlError`s and bad rows are defects. */
export class EventsRepo extends Effect.Service<EventsRepo>()("jobwatch/EventsRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const jobs = sql(`${schema}.jobs`)
    const events = sql(`${schema}.job_events`)
    const outcomesFunction = sql(`${schema}.job_outcomes`)
    const columns = sql.literal(eventColumns)

    const position = (p: StreamPosition) => sql`(${p.tx}::xid8, ${p.jobId}::uuid, ${p.version}::int)`
    const toEvents = (rows: ReadonlyArray<EventRow>): ReadonlyArray<JobEvent> => rows.map(toJobEvent)

    /** The events of a job after `afterVersion`, in version order. */
    const eventsOf = (id: JobId, afterVersion: number, limit = 1000) =>
      sql`SELECT ${columns} FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.job_id = ${id} AND e.version > ${afterVersion}
          ORDER BY e.version LIMIT ${limit}`.pipe(
        Effect.flatMap(decodeEventRows),
        Effect.map(toEvents),
        Effect.orDie
      )

    /**
     * The events after each job's cursor, for many jobs in one query, ordered by job then version. The caller
     * bounds the number of jobs (chunks of at most 1,000).
     */
    const eventsAfter = (cursors: ReadonlyArray<{ readonly id: JobId; readonly after: number }>) =>
      cursors.length === 0
        ? Effect.succeed<ReadonlyArray<JobEvent>>([])
        : sql`SELECT ${columns}
              FROM unnest(${cursors.map((c) => c.id)}::uuid[], ${cursors.map((c) => c.after)}::int[]) AS w(id, after)
              JOIN ${events} e ON e.job_id = w.id AND e.version > w.after
              JOIN ${jobs} j ON j.id = e.job_id
              ORDER BY e.job_id, e.version`.pipe(
          Effect.flatMap(decodeEventRows),
          Effect.map(toEvents),
          Effect.orDie
        )

    /**
     * The stream of all events (of `filter.owner`'s jobs, when given) after `cursor`, in stream order, at most
     * `limit`: only events of transactions below this read's snapshot xmin, which have all ended (sql/0006), so no
     * later read can find an event before the last one answered. `position` is the events' stream position.
     * With `until`, only events at or before that position (a stream catching up to the process's tail).
     */
    const streamAfter = (cursor: StreamPosition, filter: StreamFilter, limit: number, until?: StreamPosition) =>
      sql`SELECT ${columns}, e.tx::text AS tx, j.owner, j.queue, j.name
          FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
            AND (e.tx, e.job_id, e.version) > (${cursor.tx}::xid8, ${cursor.jobId}::uuid, ${cursor.version}::int)
            ${until === undefined ? sql`` : sql`AND (e.tx, e.job_id, e.version) <= ${position(until)}`}
            ${filter.owner === undefined ? sql`` : sql`AND j.owner = ${filter.owner}`}
            ${filter.statuses === undefined ? sql`` : sql`AND e.status = ANY(${filter.statuses})`}
            ${filter.queue === undefined ? sql`` : sql`AND j.queue = ${filter.queue}`}
            ${filter.name === undefined ? sql`` : sql`AND j.name = ${filter.name}`}
            ${filter.jobId === undefined ? sql`` : sql`AND e.job_id = ${filter.jobId}::uuid`}
          ORDER BY e.tx, e.job_id, e.version
          LIMIT ${limit}`.pipe(Effect.flatMap(decodeTailRows), Effect.map(toTailItems), Effect.orDie)

    /**
     * The stream of all events after `cursor`, as `streamAfter` reads it, with the columns of each event's job that
     * per-user streams filter by: the read of the process's one stream tail.
     */
    const tailAfter = (cursor: StreamPosition, limit: number) =>
      sql`SELECT ${columns}, e.tx::text AS tx, j.owner, j.queue, j.name
          FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
            AND (e.tx, e.job_id, e.version) > (${cursor.tx}::xid8, ${cursor.jobId}::uuid, ${cursor.version}::int)
          ORDER BY e.tx, e.job_id, e.version
          LIMIT ${limit}`.pipe(Effect.flatMap(decodeTailRows), Effect.map(toTailItems), Effect.orDie)

    /** The position before every event not yet ended now: where a stream that starts "from now" begins. */
    const streamNow = sql`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`.pipe(
      Effect.flatMap(decodeXmin),
      Effect.map(([row]): StreamPosition => ({ tx: row.xmin, jobId: noJob, version: 0 })),
      Effect.orDie
    )

    /** The current outcome of many jobs in one query (unknown ids are absent), as `job_outcome_json` builds it. */
    const outcomes = (ids: ReadonlyArray<JobId>) =>
      ids.length === 0
        ? Effect.succeed<ReadonlyArray<JobOutcome>>([])
        : sql`SELECT o AS outcome FROM ${outcomesFunction}(${ids}::uuid[]) AS o`.pipe(
          Effect.flatMap(decodeOutcomeRows),
          Effect.map((rows) => rows.map((row) => fromOutcomeJson(row.outcome))),
          Effect.orDie
        )

    return { eventsOf, eventsAfter, streamAfter, tailAfter, streamNow, outcomes } as const
  })
}) {}
