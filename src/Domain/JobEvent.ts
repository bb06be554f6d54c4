import { Schema } from "effect"
import { JobError } from "./Job.js"
import { EventId, JobId } from "./JobId.js"
import { JobStatus } from "./JobStatus.js"

/** `job.status.changed`: a transition; `job.progress`: a persisted progress report; `job.cancel_requested`. */
export const JobEventType = Schema.Literal("job.status.changed", "job.progress", "job.cancel_requested")
export type JobEventType = typeof JobEventType.Type

/**
 * One entry of a job's gap-free history: versions of a job are contiguous from 1, so a consumer that knows
 * version v asks for the events after v and can never miss or repeat one. The same shape feeds SSE, RPC
 * streams and webhooks.
 */
export class JobEvent extends Schema.Class<JobEvent>("JobEvent")({
  id: EventId,
  jobId: JobId,
  version: Schema.Int,
  type: JobEventType,
  status: JobStatus,
  previousStatus: Schema.NullOr(JobStatus),
  progress: Schema.Number,
  previousProgress: Schema.NullOr(Schema.Number),
  step: Schema.NullOr(Schema.String),
  message: Schema.NullOr(Schema.String),
  attempt: Schema.Int,
  milestone: Schema.Boolean,
  data: Schema.Unknown,
  error: Schema.NullOr(JobError),
  result: Schema.Unknown,
  timestamp: Schema.DateTimeUtc
}) {}
