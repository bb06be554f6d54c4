import { Effect, Either, Schema } from "effect"
import type { ParseResult } from "effect"
import type { JobId } from "../Domain/JobId.js"
import { JobStatus as JobStatusSchema } from "../Domain/JobStatus.js"
import { DbJobId, EventRecord, JobRecord } from "../internal/rows.js"

// What the completion functions (`job_complete_many`, `job_complete_claim`) answer, decoded for `Transitions`.

/** What `job_complete_many` answers per job found: its event if completed. */
const Completed = Schema.Struct({
  id: DbJobId,
  foundStatus: JobStatusSchema,
  foundWorker: Schema.NullOr(Schema.String),
  event: Schema.NullOr(EventRecord),
  result: Schema.Unknown,
  artefacts: Schema.optional(Schema.Unknown),
  /** The job's queue and the completed attempt's run time (for the metrics). */
  queue: Schema.optional(Schema.NullOr(Schema.String)),
  runSeconds: Schema.optional(Schema.NullOr(Schema.Number))
})
type Completed = typeof Completed.Type
const decodeCompleted = Schema.decodeUnknownEither(Completed)
const decodeEventRecord = Schema.decodeUnknownSync(EventRecord)
const decodeClaimedRecords = Schema.decodeUnknown(Schema.Array(JobRecord))
const isStatus = Schema.is(JobStatusSchema)

/** An answered item: `event` is the event's record, decoded only when it is published (`eventOf`). */
export type CompletedItem = Omit<Completed, "event"> & { readonly event: unknown }

/**
 * One item of what `job_complete_many` answers, checked by hand where its shape is the common one (a completion of
 * this worker's job); other shapes go through the schema. The event is left as it came: the schema decode of every
 * event took a visible share of a busy worker's time, and it is needed only when someone in this process listens.
 */
const completedOf = (raw: unknown): Either.Either<CompletedItem, ParseResult.ParseError> => {
  const r = raw as
    | {
      id?: unknown
      foundStatus?: unknown
      foundWorker?: unknown
      event?: unknown
      result?: unknown
      artefacts?: unknown
      queue?: unknown
      runSeconds?: unknown
    }
    | null
  if (
    typeof r === "object" && r !== null && typeof r.id === "string" && isStatus(r.foundStatus) &&
    (r.foundWorker === null || typeof r.foundWorker === "string") && typeof r.event === "object" && r.event !== null
  ) {
    return Either.right({
      id: r.id as JobId,
      foundStatus: r.foundStatus,
      foundWorker: r.foundWorker,
      event: r.event,
      result: r.result,
      artefacts: r.artefacts,
      queue: typeof r.queue === "string" ? r.queue : null,
      runSeconds: typeof r.runSeconds === "number" ? r.runSeconds : null
    })
  }
  return decodeCompleted(raw)
}

/** The event of an answered item (a record as `row_to_json` wrote it, decoded by the schema or not yet). */
export const eventOf = (item: CompletedItem): EventRecord => decodeEventRecord(item.event)

/** What `job_complete_many` and `job_complete_claim` answer: the completions, and the jobs claimed with them. */
export const decodeCompletedClaimed = (rows: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const answer = (rows[0] as { answer?: { answers?: unknown; claimed?: unknown } } | undefined)?.answer
    if (typeof answer !== "object" || answer === null) {
      return yield* Effect.die(new Error("job_complete_many answered no object"))
    }
    const answers = Array.isArray(answer.answers) ? yield* Effect.all(answer.answers.map(completedOf)) : []
    const claimed = answer.claimed === null || answer.claimed === undefined ? [] : yield* decodeClaimedRecords(answer.claimed)
    return { answers, claimed }
  })

