import type { DateTime } from "effect"
import { Either, Schema } from "effect"
import { JobError, JobOutcome } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { JobId } from "../Domain/JobId.js"
import { isTerminal, JobStatus } from "../Domain/JobStatus.js"

/**
 * A job's terminal outcome, built here only, for the outcome notification, the outcomes read (the waiters' snapshot),
 * the waiters following events and the streams.
 */
export const makeOutcome = (fields: {
  readonly id: JobId
  readonly version: number
  readonly status: JobStatus
  readonly result: unknown
  readonly errorCode: string | null
  readonly errorMessage: string | null
  readonly at: DateTime.Utc | null
}): JobOutcome => {
  const terminal = isTerminal(fields.status)
  return new JobOutcome({
    id: fields.id,
    status: fields.status,
    terminal,
    result: fields.status === "completed" ? fields.result ?? null : null,
    error: fields.errorCode === null && fields.errorMessage === null
      ? null
      : new JobError({ code: fields.errorCode, message: fields.errorMessage ?? "" }, true),
    version: fields.version,
    finishedAt: terminal ? fields.at : null
  }, true)
}

/** What `job_outcome_json` (sql/functions) writes, as JSON. */
export const OutcomeJson = Schema.Struct({
  id: JobId,
  version: Schema.Int,
  status: JobStatus,
  result: Schema.optionalWith(Schema.Unknown, { default: () => null }),
  errorCode: Schema.NullOr(Schema.String),
  errorMessage: Schema.NullOr(Schema.String),
  at: Schema.NullOr(Schema.DateTimeUtc)
})

/** A `JobOutcome` from `job_outcome_json`'s value. */
export const OutcomeFromJson = Schema.transform(OutcomeJson, Schema.typeSchema(JobOutcome), {
  strict: true,
  decode: makeOutcome,
  encode: (outcome) => ({
    id: outcome.id,
    version: outcome.version,
    status: outcome.status,
    result: outcome.result,
    errorCode: outcome.error?.code ?? null,
    errorMessage: outcome.error?.message ?? null,
    at: outcome.finishedAt
  })
})

/** The payload of an outcome notification: a JSON array of `job_outcome_json` values. */
export const OutcomePayload = Schema.parseJson(Schema.Array(OutcomeFromJson))

const decodePayload = Schema.decodeUnknownEither(OutcomePayload)

/** The outcomes an outcome notification carries; `undefined` when it is not what the trigger sends. */
export const decodeOutcomePayload = (payload: string): ReadonlyArray<JobOutcome> | undefined =>
  Either.getOrUndefined(decodePayload(payload))

/** The outcome a job's event tells (terminal when the event is the job's terminal status change). */
export const outcomeOfEvent = (event: JobEvent): JobOutcome =>
  makeOutcome({
    id: event.jobId,
    version: event.version,
    status: event.status,
    result: event.result,
    errorCode: event.error?.code ?? null,
    errorMessage: event.error?.message ?? null,
    at: event.timestamp
  })
