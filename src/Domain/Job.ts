import { Schema } from "effect"
import { Text } from "./Fields.js"
import { JobId } from "./JobId.js"
import { JobStatus } from "./JobStatus.js"

const Timestamp = Schema.DateTimeUtc
const NullableTimestamp = Schema.NullOr(Schema.DateTimeUtc)

/**
 * When a job is due: `null` for a job that was due at once when it was enqueued (no `runAt`, no delay) and has not
 * been rescheduled since; the time it is due for a scheduled or retried one.
 */
const ScheduledAt = NullableTimestamp.annotations({
  description: "When the job is due; null for an immediate job (enqueued without runAt or delay, never rescheduled)"
})

/** What enqueue answers: enough to find the job again. `existing` is true when an idempotency key matched. */
export class JobRef extends Schema.Class<JobRef>("JobRef")({
  id: JobId,
  name: Schema.String,
  queue: Schema.String,
  status: JobStatus,
  scheduledAt: ScheduledAt,
  createdAt: Timestamp,
  existing: Schema.Boolean
}) {}

/** The latest progress a worker reported. */
export class JobProgress extends Schema.Class<JobProgress>("JobProgress")({
  percent: Schema.Number,
  step: Schema.NullOr(Schema.String),
  message: Schema.NullOr(Schema.String),
  data: Schema.Unknown,
  updatedAt: NullableTimestamp
}) {}

/** Why a job (or its last attempt) failed. */
export class JobError extends Schema.Class<JobError>("JobError")({
  code: Schema.NullOr(Schema.String),
  message: Schema.String
}) {}

/**
 * Who runs a job: `queue`, jobwatch's workers, which claim it; `external`, a system outside jobwatch (Celery tasks,
 * a cron host) that reports on it by id (`start`, `progress`, `complete`, `fail`) without a lease: never claimed.
 */
export const JobTracking = Schema.Literal("queue", "external").annotations({ identifier: "JobTracking" })
export type JobTracking = typeof JobTracking.Type
/** How a job is tracked, as it is answered: `JobTracking`, or `task`, a job library task (claimed by its type's workers). */
export const JobTrackingInfo = Schema.Literal("queue", "external", "task").annotations({ identifier: "JobTrackingInfo" })

/** The schemes an artefact's URL may not have: what a browser would run rather than fetch. */
const scriptSchemes = /^(javascript|vbscript|data):/i
/** How many artefacts a job holds at most. */
export const MAX_ARTEFACTS = 100

const artefactFields = {
  name: Text(200).annotations({ description: "unique per job: attaching the same name again replaces it" }),
  url: Text(2000).pipe(
    Schema.pattern(/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/, { message: () => "must be an absolute URL (scheme:…, no spaces)" }),
    Schema.filter((url) => !scriptSchemes.test(url), { message: () => "must not be a javascript:, vbscript: or data: URL" })
  ).annotations({ description: "where it is: an absolute URL (https://…, s3://…)" }),
  contentType: Text(255).pipe(
    Schema.pattern(/^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;.*)?$/, { message: () => "must be a media type such as application/pdf" })
  ).annotations({ description: "its media type" }),
  size: Schema.Number.pipe(Schema.int(), Schema.between(0, Number.MAX_SAFE_INTEGER)).annotations({
    description: "its size in bytes"
  })
}
const Checksum = Text(200).pipe(
  Schema.pattern(/^[A-Za-z0-9-]+:[A-Za-z0-9+/=_-]+$/, { message: () => "must be <algorithm>:<digest>, as sha256:9f86d0…" })
).annotations({ description: "<algorithm>:<digest>, as sha256:9f86d0…" })

/** A file or object a job produced, as its worker attached it: where it is, what it is, how big. */
export const Artefact = Schema.Struct({ ...artefactFields, checksum: Schema.NullOr(Checksum) })
  .annotations({ identifier: "Artefact" })
export type Artefact = typeof Artefact.Type

/** An artefact as a worker attaches it: the checksum may be left out. */
export const ArtefactInput = Schema.Struct({ ...artefactFields, checksum: Schema.optional(Schema.NullOr(Checksum)) })
  .annotations({ identifier: "ArtefactInput" })
export type ArtefactInput = typeof ArtefactInput.Encoded

/** Artefacts to attach: 1 to `MAX_ARTEFACTS`. */
export const ArtefactInputs = Schema.Array(ArtefactInput).pipe(Schema.minItems(1), Schema.maxItems(MAX_ARTEFACTS))
  .annotations({ description: `1 to ${MAX_ARTEFACTS} artefacts; one of a name the job has replaces it` })

/**
 * Everything about a job. `queuePosition` is 1-based among pending jobs of its queue, `null` otherwise. The
 * `is…` flags and `errorMessage` are derived from `status` and `error` (the helpers of Kool Queue's
 * `JobStatusInfo`; as functions of a status in `JobStatus.ts`).
 */
export class JobInfo extends Schema.Class<JobInfo>("JobInfo")({
  id: JobId,
  name: Schema.String,
  queue: Schema.String,
  owner: Schema.NullOr(Schema.String),
  priority: Schema.Int,
  status: JobStatus,
  terminal: Schema.Boolean,
  isSuccessful: Schema.Boolean.annotations({ description: "status is completed" }),
  isFailed: Schema.Boolean.annotations({ description: "status is failed" }),
  isActive: Schema.Boolean.annotations({ description: "a worker holds it: status is claimed or running" }),
  isScheduled: Schema.Boolean.annotations({ description: "status is scheduled (a run time or a retry's backoff)" }),
  errorMessage: Schema.NullOr(Schema.String).annotations({ description: "error.message, or null" }),
  progress: JobProgress,
  payload: Schema.Unknown,
  result: Schema.Unknown,
  error: Schema.NullOr(JobError),
  attempt: Schema.Int,
  maxAttempts: Schema.Int,
  timeoutSeconds: Schema.NullOr(Schema.Number),
  idempotencyKey: Schema.NullOr(Schema.String),
  cancelRequested: Schema.Boolean,
  workerId: Schema.NullOr(Schema.String),
  leaseExpiresAt: NullableTimestamp,
  queuePosition: Schema.NullOr(Schema.Int),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  scheduledAt: ScheduledAt,
  claimedAt: NullableTimestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  version: Schema.Int,
  tracking: JobTrackingInfo,
  artefacts: Schema.Array(Artefact).annotations({ description: "what its workers attached, in order" })
}) {}

/** The lightweight status of a job, for cheap polling. */
export class JobStatusInfo extends Schema.Class<JobStatusInfo>("JobStatusInfo")({
  id: JobId,
  status: JobStatus,
  terminal: Schema.Boolean,
  percent: Schema.Number,
  version: Schema.Int
}) {}

/**
 * Where a job stands, with its result and error: what `CompletionWatcher` answers. `finishedAt` is set once the
 * job is terminal.
 */
export class JobOutcome extends Schema.Class<JobOutcome>("JobOutcome")({
  id: JobId,
  status: JobStatus,
  terminal: Schema.Boolean,
  result: Schema.Unknown,
  error: Schema.NullOr(JobError),
  version: Schema.Int,
  finishedAt: NullableTimestamp
}) {}

export class Pagination extends Schema.Class<Pagination>("Pagination")({
  total: Schema.Int,
  page: Schema.Int,
  limit: Schema.Int,
  pages: Schema.Int
}) {}

/** A page of jobs (`page`/`limit`), newest first. */
export class JobPage extends Schema.Class<JobPage>("JobPage")({
  jobs: Schema.Array(JobInfo),
  pagination: Pagination
}) {}

/** A keyset page of jobs, newest first; pass `nextCursor` back for the next one (`null`: no more). */
export class JobCursorPage extends Schema.Class<JobCursorPage>("JobCursorPage")({
  jobs: Schema.Array(JobInfo),
  nextCursor: Schema.NullOr(Schema.String)
}) {}

/** What a purge removed: `purged` jobs (with their events and webhook deliveries); `more` when it hit its limit. */
export class JobsPurged extends Schema.Class<JobsPurged>("JobsPurged")({
  purged: Schema.Int,
  more: Schema.Boolean
}) {}
