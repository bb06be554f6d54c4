import { DateTime, Schema } from "effect"
import type { Artefact } from "../Domain/Job.js"
import { JobError, JobInfo, JobProgress } from "../Domain/Job.js"
import { eventTypeOf, JobEvent, StoredEventType } from "../Domain/JobEvent.js"
import type { EventId, JobId } from "../Domain/JobId.js"
import { isActive, isFailed, isScheduled, isSuccessful, isTerminal, JobStatus } from "../Domain/JobStatus.js"

/**
 * Ids of our own `uuid` columns: PostgreSQL has checked them already, so the brand is given without the UUID pattern
 * check (4 µs an id, the largest share of a row's decode on the claim and completion paths).
 */
export const DbJobId = Schema.String.pipe(Schema.brand("JobId")) satisfies Schema.Schema<JobId, string>
export const DbEventId = Schema.String.pipe(Schema.brand("EventId")) satisfies Schema.Schema<EventId, string>

const Timestamp = Schema.DateFromSelf
const NullableTimestamp = Schema.NullOr(Schema.DateFromSelf)
const NullableString = Schema.NullOr(Schema.String)

/** A `jobs` row as `jobColumns` selects it. */
export const JobRow = Schema.Struct({
  id: DbJobId,
  name: Schema.String,
  queue: Schema.String,
  owner: NullableString,
  priority: Schema.Number,
  status: JobStatus,
  payload: Schema.Unknown,
  result: Schema.Unknown,
  errorCode: NullableString,
  errorMessage: NullableString,
  progressPercent: Schema.Number,
  progressStep: NullableString,
  progressMessage: NullableString,
  progressData: Schema.Unknown,
  progressUpdatedAt: NullableTimestamp,
  attempt: Schema.Number,
  maxAttempts: Schema.Number,
  timeoutMs: Schema.NullOr(Schema.Number),
  idempotencyKey: NullableString,
  cancelRequested: Schema.Boolean,
  workerId: NullableString,
  leaseExpiresAt: NullableTimestamp,
  queuePosition: Schema.NullOr(Schema.Number),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  scheduledAt: Timestamp,
  claimedAt: NullableTimestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  version: Schema.Number,
  external: Schema.Boolean,
  /** A job library task (it has a job type). */
  task: Schema.Boolean,
  artefacts: Schema.Unknown
})
export type JobRow = typeof JobRow.Type

/** The select list for `JobRow` from a relation aliased `j` (the `jobs` table or an `UPDATE … RETURNING`). */
export const jobColumns = `
  j.id, j.name, j.queue, j.owner, j.priority, j.status, j.payload, j.result,
  j.error_code AS "errorCode", j.error_message AS "errorMessage",
  j.progress_percent AS "progressPercent", j.progress_step AS "progressStep",
  j.progress_message AS "progressMessage", j.progress_data AS "progressData",
  j.progress_updated_at AS "progressUpdatedAt", j.attempt, j.max_attempts AS "maxAttempts",
  j.timeout_ms::float8 AS "timeoutMs", j.idempotency_key AS "idempotencyKey",
  j.cancel_requested AS "cancelRequested", j.worker_id AS "workerId", j.lease_expires_at AS "leaseExpiresAt",
  j.created_at AS "createdAt", j.updated_at AS "updatedAt", j.scheduled_at AS "scheduledAt",
  j.claimed_at AS "claimedAt", j.started_at AS "startedAt", j.finished_at AS "finishedAt", j.version, j.external,
  j.job_type_id IS NOT NULL AS task, j.artefacts`

const utc = DateTime.unsafeFromDate

/** A job's `artefacts` column: written only by `job_attach`, from checked input (a list of `Artefact`s). */
const artefactsOf = (value: unknown): ReadonlyArray<Artefact> => (Array.isArray(value) ? (value as Array<Artefact>) : [])
/** What a terminal event carries: the job's artefacts; `null` on the others. */
const eventArtefactsOf = (value: unknown): ReadonlyArray<Artefact> | null => (Array.isArray(value) ? (value as Array<Artefact>) : null)
const utcOrNull = (date: Date | null) => (date === null ? null : utc(date))

/**
 * A job's `scheduledAt` as answered: `null` while it is due since it was created (an immediate job: enqueued without
 * `runAt` or delay, both times are the insert's `now()`, and never rescheduled since).
 */
export const scheduledAtOf = (scheduledAt: Date, createdAt: Date) =>
  scheduledAt.getTime() === createdAt.getTime() ? null : utc(scheduledAt)

export const toJobInfo = (row: JobRow): JobInfo =>
  new JobInfo({
    id: row.id,
    name: row.name,
    queue: row.queue,
    owner: row.owner,
    priority: row.priority,
    status: row.status,
    terminal: isTerminal(row.status),
    isSuccessful: isSuccessful(row.status),
    isFailed: isFailed(row.status),
    isActive: isActive(row.status),
    isScheduled: isScheduled(row.status),
    errorMessage: row.errorMessage,
    progress: new JobProgress({
      percent: row.progressPercent,
      step: row.progressStep,
      message: row.progressMessage,
      data: row.progressData,
      updatedAt: utcOrNull(row.progressUpdatedAt)
    }, true),
    payload: row.payload,
    result: row.result,
    error: row.errorMessage === null && row.errorCode === null
      ? null
      : new JobError({ code: row.errorCode, message: row.errorMessage ?? "" }, true),
    attempt: row.attempt,
    maxAttempts: row.maxAttempts,
    timeoutSeconds: row.timeoutMs === null ? null : row.timeoutMs / 1000,
    idempotencyKey: row.idempotencyKey,
    cancelRequested: row.cancelRequested,
    workerId: row.workerId,
    leaseExpiresAt: utcOrNull(row.leaseExpiresAt),
    queuePosition: row.queuePosition,
    createdAt: utc(row.createdAt),
    updatedAt: utc(row.updatedAt),
    scheduledAt: scheduledAtOf(row.scheduledAt, row.createdAt),
    claimedAt: utcOrNull(row.claimedAt),
    startedAt: utcOrNull(row.startedAt),
    finishedAt: utcOrNull(row.finishedAt),
    version: row.version,
    tracking: row.external ? "external" : row.task ? "task" : "queue",
    artefacts: artefactsOf(row.artefacts)
  }, true)

/** A `job_events` row as `eventColumns` selects it. */
export const EventRow = Schema.Struct({
  id: DbEventId,
  jobId: DbJobId,
  version: Schema.Number,
  type: StoredEventType,
  status: JobStatus,
  previousStatus: Schema.NullOr(JobStatus),
  progress: Schema.Number,
  previousProgress: Schema.NullOr(Schema.Number),
  step: NullableString,
  message: NullableString,
  attempt: Schema.Number,
  milestone: Schema.Boolean,
  data: Schema.Unknown,
  errorCode: NullableString,
  errorMessage: NullableString,
  result: Schema.Unknown,
  artefacts: Schema.Unknown,
  createdAt: Timestamp
})
export type EventRow = typeof EventRow.Type

/** An `EventRow` as `to_jsonb` writes a row of `eventColumns`: the same, its timestamp as text. */
export const EventRowJson = Schema.Struct({ ...EventRow.fields, createdAt: Schema.DateFromString })

/**
 * The select list for `EventRow` from `job_events e` joined to `jobs j`: a terminal `completed` event carries the
 * job's result, and every terminal event its artefacts, which never change once terminal, so they are not copied into
 * the event.
 */
export const eventColumns = `
  e.id, e.job_id AS "jobId", e.version, e.type, e.status, e.previous_status AS "previousStatus",
  e.progress, e.previous_progress AS "previousProgress", e.step, e.message, e.attempt, e.milestone, e.data,
  e.error_code AS "errorCode", e.error_message AS "errorMessage",
  CASE WHEN e.type = 'job.status.changed' AND e.status = 'completed' THEN j.result END AS result,
  CASE WHEN e.type = 'job.status.changed' AND e.status IN ('completed', 'failed', 'canceled', 'deleted')
    THEN j.artefacts END AS artefacts,
  e.created_at AS "createdAt"`

export const toJobEvent = (row: EventRow): JobEvent =>
  new JobEvent({
    id: row.id,
    jobId: row.jobId,
    version: row.version,
    type: eventTypeOf(row.type, row.status),
    status: row.status,
    previousStatus: row.previousStatus,
    progress: row.progress,
    previousProgress: row.previousProgress,
    step: row.step,
    message: row.message,
    attempt: row.attempt,
    milestone: row.milestone,
    data: row.data,
    error: row.errorMessage === null && row.errorCode === null
      ? null
      : new JobError({ code: row.errorCode, message: row.errorMessage ?? "" }, true),
    result: row.result,
    artefacts: eventArtefactsOf(row.artefacts),
    timestamp: utc(row.createdAt)
  }, true)

/** A `jobs` row as `row_to_json` writes it: column names, timestamps as text. */
export const JobRecord = Schema.Struct({
  id: DbJobId,
  name: Schema.String,
  queue: Schema.String,
  owner: NullableString,
  priority: Schema.Number,
  status: JobStatus,
  payload: Schema.Unknown,
  result: Schema.Unknown,
  error_code: NullableString,
  error_message: NullableString,
  progress_percent: Schema.Number,
  progress_step: NullableString,
  progress_message: NullableString,
  progress_data: Schema.Unknown,
  progress_updated_at: NullableString,
  attempt: Schema.Number,
  max_attempts: Schema.Number,
  timeout_ms: Schema.NullOr(Schema.Number),
  idempotency_key: NullableString,
  cancel_requested: Schema.Boolean,
  worker_id: NullableString,
  lease_expires_at: NullableString,
  created_at: Schema.String,
  updated_at: Schema.String,
  scheduled_at: Schema.String,
  claimed_at: NullableString,
  started_at: NullableString,
  finished_at: NullableString,
  version: Schema.Number,
  external: Schema.Boolean,
  job_type_id: Schema.optional(Schema.NullOr(Schema.Union(Schema.Number, Schema.String))),
  artefacts: Schema.Unknown,
  traceparent: Schema.optional(NullableString),
  tracestate: Schema.optional(NullableString)
})
export type JobRecord = typeof JobRecord.Type

/** A `job_events` row as `row_to_json` writes it. */
export const EventRecord = Schema.Struct({
  id: DbEventId,
  job_id: DbJobId,
  version: Schema.Number,
  type: StoredEventType,
  status: JobStatus,
  previous_status: Schema.NullOr(JobStatus),
  progress: Schema.Number,
  previous_progress: Schema.NullOr(Schema.Number),
  step: NullableString,
  message: NullableString,
  attempt: Schema.Number,
  milestone: Schema.Boolean,
  data: Schema.Unknown,
  error_code: NullableString,
  error_message: NullableString,
  created_at: Schema.String
})
export type EventRecord = typeof EventRecord.Type

/**
 * What a writer function (`job_transition`, `job_progress`) answers for a job found: the status (and worker,
 * percent) found and, when the change applied, the changed job and the event written.
 */
export const Found = Schema.Struct({
  foundStatus: JobStatus,
  foundWorker: NullableString,
  foundPercent: Schema.optional(Schema.Number),
  foundExternal: Schema.optional(Schema.Boolean),
  /** `job_attach`'s: how many artefacts the job would hold (more than allowed: nothing written). */
  count: Schema.optional(Schema.Number),
  job: Schema.optional(JobRecord),
  event: Schema.optional(EventRecord)
})
export type Found = typeof Found.Type

/** Decoders built once: rows of our own statements, checked at the boundary (unknown columns are ignored). */
export const decodeJobRows = Schema.decodeUnknown(Schema.Array(JobRow))
export const decodeEventRows = Schema.decodeUnknown(Schema.Array(EventRow))
export const decodeFound = Schema.decodeUnknown(Schema.NullOr(Found))

const dateOrNull = (text: string | null) => (text === null ? null : new Date(text))

/** The `JobRow` of a job's record (as `jobColumns` would select it; no queue position). */
export const jobRowOf = (r: JobRecord): JobRow => ({
  id: r.id,
  name: r.name,
  queue: r.queue,
  owner: r.owner,
  priority: r.priority,
  status: r.status,
  payload: r.payload,
  result: r.result,
  errorCode: r.error_code,
  errorMessage: r.error_message,
  progressPercent: r.progress_percent,
  progressStep: r.progress_step,
  progressMessage: r.progress_message,
  progressData: r.progress_data,
  progressUpdatedAt: dateOrNull(r.progress_updated_at),
  attempt: r.attempt,
  maxAttempts: r.max_attempts,
  timeoutMs: r.timeout_ms,
  idempotencyKey: r.idempotency_key,
  cancelRequested: r.cancel_requested,
  workerId: r.worker_id,
  leaseExpiresAt: dateOrNull(r.lease_expires_at),
  queuePosition: null,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at),
  scheduledAt: new Date(r.scheduled_at),
  claimedAt: dateOrNull(r.claimed_at),
  startedAt: dateOrNull(r.started_at),
  finishedAt: dateOrNull(r.finished_at),
  version: r.version,
  external: r.external,
  task: r.job_type_id !== undefined && r.job_type_id !== null,
  artefacts: r.artefacts
})

/** What a worker is sent of a job it claimed (the fields of `ClaimedJob` a claim's row gives). */
export type ClaimedRow =
  & Pick<
    JobInfo,
    "id" | "name" | "queue" | "payload" | "priority" | "attempt" | "maxAttempts" | "timeoutSeconds" | "leaseExpiresAt" | "version"
  >
  & {
    /** The trace context the job was created in (sql/0022), if any. */
    readonly traceparent: string | null
    readonly tracestate: string | null
    /** Seconds from when the job was due to its claim (for the metrics). */
    readonly waitSeconds?: number | undefined
  }

/** The `ClaimedRow` of a claimed job's record (`job_complete_claim`'s `claimed`). */
export const claimedRowOf = (r: JobRecord): ClaimedRow => ({
  id: r.id,
  name: r.name,
  queue: r.queue,
  payload: r.payload,
  priority: r.priority,
  attempt: r.attempt,
  maxAttempts: r.max_attempts,
  timeoutSeconds: r.timeout_ms === null ? null : r.timeout_ms / 1000,
  leaseExpiresAt: r.lease_expires_at === null ? null : utc(new Date(r.lease_expires_at)),
  version: r.version,
  traceparent: r.traceparent ?? null,
  tracestate: r.tracestate ?? null
})

/**
 * The `EventRow` of an event's record; `result` and `artefacts` are its job's (carried by a `completed` event, by a
 * terminal one).
 */
export const eventRowOf = (r: EventRecord, result: unknown, artefacts: unknown): EventRow => ({
  id: r.id,
  jobId: r.job_id,
  version: r.version,
  type: r.type,
  status: r.status,
  previousStatus: r.previous_status,
  progress: r.progress,
  previousProgress: r.previous_progress,
  step: r.step,
  message: r.message,
  attempt: r.attempt,
  milestone: r.milestone,
  data: r.data,
  errorCode: r.error_code,
  errorMessage: r.error_message,
  result: r.type === "job.status.changed" && r.status === "completed" ? result : null,
  artefacts: r.type === "job.status.changed" && isTerminal(r.status) ? artefacts : null,
  createdAt: new Date(r.created_at)
})
