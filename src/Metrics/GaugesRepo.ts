import { SqlClient } from "@effect/sql"
import { Duration, Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"

/** The most queues one sample reports (the busiest): the label cardinality stays bounded whatever the queues. */
export const SAMPLE_QUEUES = 200

const QueueSample = Schema.Struct({
  queue: Schema.String,
  pending: Schema.Number,
  scheduled: Schema.Number,
  running: Schema.Number,
  /** Seconds since the oldest pending job became due; null when none is pending. */
  oldest: Schema.NullOr(Schema.Number)
})

/** What the database says now, for the gauges the reaper's process reports. */
export const GaugeSample = Schema.Struct({
  queues: Schema.Array(QueueSample),
  workers: Schema.Number,
  deliveries: Schema.Number,
  oldestDelivery: Schema.NullOr(Schema.Number),
  disabled: Schema.Number
})
export type GaugeSample = typeof GaugeSample.Type
const decodeSample = Schema.decodeUnknown(Schema.Tuple(GaugeSample))

/**
 * The one statement of the database gauges: the unfinished jobs by queue and status (finished jobs are never read:
 * `jobs_by_status` finds the others), the queues live workers serve, the live workers, the pending webhook deliveries
 * (`webhook_deliveries_due`) and the disabled endpoints. `SqlError`s fail (the gauges are then left out, the rest of the scrape answered).
 */
export class GaugesRepo extends Effect.Service<GaugesRepo>()("jobwatch/GaugesRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const config = yield* JobWatchConfig
    const jobs = sql(`${config.schema}.jobs`)
    const workers = sql(`${config.schema}.workers`)
    const deliveries = sql(`${config.schema}.webhook_deliveries`)
    const endpoints = sql(`${config.schema}.webhook_endpoints`)
    const workerTimeoutMs = Duration.toMillis(config.workerTimeout)

    const live = sql`last_seen_at >= now() - ${workerTimeoutMs} * interval '1 millisecond'`
    const sample = sql`
      WITH counts AS (
        SELECT queue, count(*) FILTER (WHERE status = 'pending')::int AS pending,
          count(*) FILTER (WHERE status = 'scheduled')::int AS scheduled,
          count(*) FILTER (WHERE status IN ('claimed', 'running'))::int AS running,
          extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE status = 'pending'))::float8 AS oldest
        FROM ${jobs} WHERE status IN ('pending', 'scheduled', 'claimed', 'running')
        GROUP BY queue
      ), queues AS (
        -- the queues with unfinished jobs, and those a live worker serves (reported at 0 when empty)
        SELECT queue FROM counts UNION SELECT unnest(queues) FROM ${workers} WHERE ${live}
      )
      SELECT coalesce((SELECT json_agg(q) FROM (
          SELECT q.queue, coalesce(c.pending, 0) AS pending, coalesce(c.scheduled, 0) AS scheduled,
            coalesce(c.running, 0) AS running, c.oldest
          FROM queues q LEFT JOIN counts c ON c.queue = q.queue
          ORDER BY coalesce(c.pending + c.scheduled + c.running, 0) DESC, q.queue LIMIT ${SAMPLE_QUEUES}) q), '[]') AS queues,
        (SELECT count(*)::int FROM ${workers} WHERE ${live}) AS workers,
        (SELECT count(*)::int FROM ${deliveries} WHERE status = 'pending') AS deliveries,
        (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM ${deliveries}
          WHERE status = 'pending') AS "oldestDelivery",
        (SELECT count(*)::int FROM ${endpoints} WHERE NOT active) AS disabled`.pipe(
      Effect.flatMap(decodeSample),
      Effect.map(([row]) => row),
      Effect.withSpan("GaugesRepo.sample")
    )

    return { sample } as const
  })
}) {}
