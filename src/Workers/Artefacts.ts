import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidInput, InvalidTransition, JobNotFound, NotJobHolder } from "../Domain/Errors.js"
import type { Artefact, JobInfo } from "../Domain/Job.js"
import { ArtefactInputs, MAX_ARTEFACTS } from "../Domain/Job.js"
import type { JobId } from "../Domain/JobId.js"
import { LocalEvents } from "../EventLog.js"
import { decodeField } from "../internal/invalid.js"
import { decodeFound, eventRowOf, jobRowOf, toJobEvent, toJobInfo } from "../internal/rows.js"

const artefactsOf = decodeField(ArtefactInputs, "artefacts")

/**
 * Artefacts from outside, checked (`ArtefactInputs`: 1 to 100, each field bounded), as stored: one per name (the
 * last given wins, at the place of the first), the checksum `null` when left out.
 */
export const decodeArtefacts = (value: unknown) =>
  Effect.map(artefactsOf(value), (items): ReadonlyArray<Artefact> => {
    const byName = new Map<string, Artefact>()
    for (const item of items) {
      byName.set(item.name, {
        name: item.name,
        url: item.url,
        contentType: item.contentType,
        size: item.size,
        checksum: item.checksum ?? null
      })
    }
    return [...byName.values()]
  })

export type AttachRefused = JobNotFound | InvalidTransition | NotJobHolder | InvalidInput

/**
 * The SQL of artefacts (`job_attach`, sql/functions): a worker attaches them while the job runs (a version and a
 * `job.progress` event of their own) or with its end (`withArtefacts`: the same transaction as the completion or
 * the failure, whose event carries them). `SqlError`s and bad answers are defects here.
 */
export class Artefacts extends Effect.Service<Artefacts>()("jobwatch/Artefacts", {
  dependencies: [LocalEvents.Default],
  effect: Effect.gen(function*() {
    const client = yield* SqlClient.SqlClient
    const sql = client.withoutTransforms()
    const local = yield* LocalEvents
    const { schema } = yield* JobWatchConfig
    const attachFunction = sql(`${schema}.job_attach`)

    const write = (
      id: JobId,
      artefacts: ReadonlyArray<Artefact>,
      options: { readonly workerId?: string | undefined; readonly event: boolean }
    ): Effect.Effect<JobInfo, AttachRefused> =>
      sql`SELECT ${attachFunction}(${id}::uuid, ${options.workerId ?? null}::text, ${JSON.stringify(artefacts)}::jsonb,
            ${MAX_ARTEFACTS}::int, ${options.event}::boolean) AS found`.pipe(
        Effect.flatMap((rows) => decodeFound(rows[0]?.found ?? null)),
        Effect.orDie,
        Effect.flatMap((found): Effect.Effect<JobInfo, AttachRefused> => {
          if (found === null) return new JobNotFound({ id })
          if (found.count !== undefined) {
            return new InvalidInput({
              field: "artefacts",
              message: `a job holds at most ${MAX_ARTEFACTS} artefacts: these would make it ${found.count}`
            })
          }
          if (found.job !== undefined) {
            const row = jobRowOf(found.job)
            const event = found.event
            return event === undefined
              ? Effect.succeed(toJobInfo(row))
              : Effect.as(local.publishCommitted(() => toJobEvent(eventRowOf(event, null, null))), toJobInfo(row))
          }
          const external = found.foundExternal === true
          const held = found.foundStatus === "claimed" || found.foundStatus === "running"
          if (!external && held && options.workerId !== undefined && found.foundWorker !== options.workerId) {
            return new NotJobHolder({ id, workerId: options.workerId })
          }
          return new InvalidTransition({ id, from: found.foundStatus, to: "running" })
        }),
        Effect.withSpan("Artefacts.write")
      )

    /** Attaches `artefacts` to a job that runs: its next version, and a `job.progress` event with them as `data`. */
    const attach = (id: JobId, artefacts: ReadonlyArray<Artefact>, workerId?: string) =>
      write(id, artefacts, { workerId, event: true })

    /**
     * `end` (the job's completion or failure) with `artefacts` attached first, in one transaction: both apply or
     * neither does, and the end's event carries them. Without artefacts, `end` alone.
     */
    const withArtefacts = <A, E>(
      id: JobId,
      artefacts: ReadonlyArray<Artefact> | undefined,
      workerId: string | undefined,
      end: Effect.Effect<A, E>
    ): Effect.Effect<A, E | AttachRefused> =>
      artefacts === undefined || artefacts.length === 0
        ? end
        : client.withTransaction(Effect.zipRight(write(id, artefacts, { workerId, event: false }), end)).pipe(
          Effect.catchTag("SqlError", Effect.die)
        )

    return { attach, withArtefacts } as const
  })
}) {}
