import { DateTime, Either, Option, Predicate, Schema } from "effect"
import { JobError, JobOutcome } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { JobId } from "../Domain/JobId.js"
import { DbJobId } from "../internal/rows.js"
import { isJobStatus, isTerminal, JobStatus } from "../Domain/JobStatus.js"

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

/**
 * What `job_outcome_json` (sql/functions) writes, as JSON. `at` is PostgreSQL's ISO text, read by `DateTime.make`:
 * `Schema.DateTimeUtc` cost 10 µs an item, more than the rest of the decode together, on the waiters' hot path.
 */
export const OutcomeJson = Schema.Struct({
  id: DbJobId,
  version: Schema.Int,
  status: JobStatus,
  result: Schema.optionalWith(Schema.Unknown, { default: () => null }),
  errorCode: Schema.NullOr(Schema.String),
  errorMessage: Schema.NullOr(Schema.String),
  at: Schema.NullOr(Schema.String)
})

/** A `JobOutcome` from `job_outcome_json`'s value (decoded by `OutcomeJson`). */
export const fromOutcomeJson = (json: typeof OutcomeJson.Type): JobOutcome =>
  makeOutcome({ ...json, at: json.at === null ? null : Option.getOrNull(DateTime.make(json.at)) })

/** The payload of an outcome notification: a JSON array of `job_outcome_json` values. */
export const OutcomePayload = Schema.parseJson(Schema.Array(OutcomeJson))

const parseJson = Schema.decodeUnknownEither(Schema.parseJson())
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
/** PostgreSQL's ISO text as a `DateTime.Utc` (a quarter of `DateTime.make`'s cost), `null` when it is not a time. */
const utcOf = (text: string): DateTime.Utc | null => {
  const date = new Date(text)
  return Number.isNaN(date.getTime()) ? null : DateTime.unsafeFromDate(date)
}
const isNullOrString = (value: unknown): value is string | null => value === null || typeof value === "string"

/**
 * The outcomes a JSON array of `job_outcome_json` values carries (what `OutcomePayload` decodes, checked field by
 * field by hand: the Schema decode cost 6 µs an item, 12 times the parse, on the waiters' hot path); `undefined` when
 * it is not what the trigger sends: then nothing of it is used, and the waiters read instead.
 */
export const decodeOutcomePayload = (payload: string): ReadonlyArray<JobOutcome> | undefined => {
  const parsed = parseJson(payload)
  if (Either.isLeft(parsed) || !Array.isArray(parsed.right)) return undefined
  const items: ReadonlyArray<unknown> = parsed.right
  const outcomes: Array<JobOutcome> = []
  for (const item of items) {
    if (!Predicate.isRecord(item)) return undefined
    const { at, errorCode, errorMessage, id, result, status, version } = item
    if (
      typeof id !== "string" || !uuid.test(id) || typeof version !== "number" || !Number.isSafeInteger(version) ||
      version < 1 || !isJobStatus(status) || !isNullOrString(errorCode) || !isNullOrString(errorMessage) ||
      !isNullOrString(at)
    ) return undefined
    outcomes.push(makeOutcome({
      id: JobId.make(id, { disableValidation: true }),
      version,
      status,
      result: result ?? null,
      errorCode,
      errorMessage,
      at: at === null ? null : utcOf(at)
    }))
  }
  return outcomes
}

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
