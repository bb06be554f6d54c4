import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidTransition, JobNotFound, NotJobHolder, ProgressRegression } from "../Domain/Errors.js"
import type { JobInfo } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import type { JobId } from "../Domain/JobId.js"
import { decodeFound, eventRowOf, jobRowOf, toJobEvent, toJobInfo } from "../internal/rows.js"

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

/** A progress write that applied: the job and the event written. */
export interface Written {
  readonly job: JobInfo
  readonly event: JobEvent
}

type ProgressRefused = JobNotFound | InvalidTransition | NotJobHolder | ProgressRegression

/** The SQL of progress writes (`job_progress`, sql/functions). `SqlError`s and bad answers are defects here. */
export class ProgressRepo extends Effect.Service<ProgressRepo>()("jobwatch/ProgressRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const progressFunction = sql(`${schema}.job_progress`)

    /**
     * Writes a progress report, keeping the maximum: the job must be `claimed` or `running` (held by `workerId` when
     * given; an external job: pending too, by anyone) and not further than `percent` already (`ProgressRegression`
     * otherwise). Progress above 0 makes a `claimed` (or pending external) job `running`. Answers the job and the event written (`job.progress`, a `milestone` when the report
     * is the job's first, crosses 25, 50, 75 or 100, or moved 10 points or more since the last marked one).
     */
    const writeProgress = (
      id: JobId,
      report: ProgressWrite,
      acting: Acting
    ): Effect.Effect<Written, ProgressRefused> =>
      sql`SELECT ${progressFunction}(${id}::uuid, ${acting.workerId ?? null}::text, ${report.percent}::float8,
            ${report.step ?? null}::text, ${report.message ?? null}::text, ${report.dataJson ?? null}::jsonb,
            ${acting.now}::timestamptz) AS found`.pipe(
        Effect.flatMap((rows) => decodeFound(rows[0]?.found ?? null)),
        Effect.orDie,
        Effect.flatMap((found): Effect.Effect<Written, ProgressRefused> => {
          if (found === null) return new JobNotFound({ id })
          if (found.job !== undefined && found.event !== undefined) {
            const job = jobRowOf(found.job)
            return Effect.succeed({ job: toJobInfo(job), event: toJobEvent(eventRowOf(found.event, job.result, job.artefacts)) })
          }
          const external = found.foundExternal === true
          const reportable = found.foundStatus === "claimed" || found.foundStatus === "running" ||
            (external && found.foundStatus === "pending")
          if (!reportable) return new InvalidTransition({ id, from: found.foundStatus, to: "running" })
          if (!external && acting.workerId !== undefined && found.foundWorker !== acting.workerId) {
            return new NotJobHolder({ id, workerId: acting.workerId })
          }
          return new ProgressRegression({ id, current: found.foundPercent ?? 0, requested: report.percent })
        }),
        Effect.withSpan("ProgressRepo.writeProgress")
      )

    return { writeProgress } as const
  })
}) {}
