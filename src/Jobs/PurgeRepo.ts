import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { JobId } from "../Domain/JobId.js"
import type { TerminalStatus } from "../Domain/JobStatus.js"
import { TerminalStatus as TerminalStatusSchema } from "../Domain/JobStatus.js"

/** Which finished jobs to purge; every field narrows (absent: any). */
export interface PurgeFilter {
  /** Only jobs that finished before this. */
  readonly before?: Date | undefined
  /** Only these jobs. */
  readonly ids?: ReadonlyArray<JobId> | undefined
  readonly owner?: string | undefined
  readonly statuses?: ReadonlyArray<TerminalStatus> | undefined
  readonly queue?: string | undefined
}

/** A job purged: its status, and how many events went with it. */
const Purged = Schema.Struct({ id: JobId, status: TerminalStatusSchema, events: Schema.Number })
export type Purged = typeof Purged.Type

const decodePurged = Schema.decodeUnknown(Schema.Array(Purged))

/**
 * Removes finished jobs with their events and webhook deliveries, through `job_purge`
 * (sql/functions/job_purge.sql), the one purge statement of every path: retention, `DELETE` of a finished job, and
 * an admin's purge by filter.
 */
export class PurgeRepo extends Effect.Service<PurgeRepo>()("jobwatch/PurgeRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const purgeFunction = sql(`${schema}.job_purge`)
    const jobs = sql(`${schema}.jobs`)

    /** Purges up to `limit` finished jobs matching `filter`, oldest finished first; answers those it removed. */
    const purge = (filter: PurgeFilter, limit: number): Effect.Effect<ReadonlyArray<Purged>> =>
      sql`SELECT p.id, p.status, p.events FROM ${purgeFunction}(${limit}::int, ${filter.before ?? null}::timestamptz,
            ${filter.ids ?? null}::uuid[], ${filter.owner ?? null}::text, ${filter.statuses ?? null}::text[],
            ${filter.queue ?? null}::text) AS p`.pipe(
        Effect.flatMap(decodePurged),
        Effect.orDie,
        Effect.withSpan("PurgeRepo.purge")
      )

    /** Which of `ids` no longer exist (the notification path: a watched job that was purged). */
    const missing = (ids: ReadonlyArray<JobId>): Effect.Effect<ReadonlyArray<JobId>> =>
      ids.length === 0 ? Effect.succeed([]) : sql<{ readonly id: JobId }>`
        SELECT x.id FROM unnest(${ids}::uuid[]) AS x(id)
        WHERE NOT EXISTS (SELECT 1 FROM ${jobs} j WHERE j.id = x.id)`.pipe(
        Effect.map((rows) => rows.map((row) => row.id)),
        Effect.orDie,
        Effect.withSpan("PurgeRepo.missing")
      )

    return { purge, missing } as const
  })
}) {}
