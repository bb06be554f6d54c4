import { Schema } from "effect"
import { JobId } from "./JobId.js"
import { JobStatus } from "./JobStatus.js"

/** A job a worker claimed: what it needs to run it. */
export class ClaimedJob extends Schema.Class<ClaimedJob>("ClaimedJob")({
  id: JobId,
  name: Schema.String,
  queue: Schema.String,
  payload: Schema.Unknown,
  priority: Schema.Int,
  attempt: Schema.Int,
  maxAttempts: Schema.Int,
  timeoutSeconds: Schema.NullOr(Schema.Number),
  leaseExpiresAt: Schema.DateTimeUtc,
  /** The job's version after the claim (the claim event's). */
  version: Schema.Int,
  /**
   * The heartbeat interval its lease was granted for (the lease lasts 1.5 × this): the claim's, or the service's
   * default. Heartbeat at least this often to keep the job.
   */
  heartbeatSeconds: Schema.optional(Schema.Number),
  /**
   * The W3C trace context the job was created in, when it was given one (a `traceparent` at enqueue, or the span of
   * a producer that exports traces): `Worker.run`'s span for running the job links to it. Absent otherwise, and
   * from services of before it.
   */
  traceparent: Schema.optional(Schema.String),
  tracestate: Schema.optional(Schema.String)
}) {}

/** What a heartbeat answers: the worker's jobs whose cancellation was requested. */
export class HeartbeatResult extends Schema.Class<HeartbeatResult>("HeartbeatResult")({
  cancelRequested: Schema.Array(JobId)
}) {}

/** What releasing a worker's jobs answers: each job let go and the status it went back to. */
export class ReleaseResult extends Schema.Class<ReleaseResult>("ReleaseResult")({
  released: Schema.Array(Schema.Struct({ id: JobId, status: JobStatus }))
}) {}

/** What a progress report answers: accepted, and whether it was written now (or coalesced for later). */
export class ProgressAck extends Schema.Class<ProgressAck>("ProgressAck")({
  accepted: Schema.Boolean,
  persisted: Schema.Boolean,
  percent: Schema.Number
}) {}

/** How a failed attempt is retried: `min(maxDelay, delay × multiplier^(attempt − 1))`, jittered. */
export interface Backoff {
  readonly delayMs: number
  readonly maxDelayMs: number
  readonly multiplier: number
}

export const defaultBackoff: Backoff = { delayMs: 1000, maxDelayMs: 3_600_000, multiplier: 2 }
