import { Schema } from "effect"
import { Artefact, JobError } from "./Job.js"
import { EventId, JobId } from "./JobId.js"
import type { TerminalStatus } from "./JobStatus.js"
import { isTerminal, JobStatus } from "./JobStatus.js"

/**
 * What `job_events.type` stores: `job.status.changed` (a transition), `job.progress` (a persisted progress
 * report), `job.cancel_requested`. The wire says more: see `JobEventType` and `eventTypeOf`.
 */
export const StoredEventType = Schema.Literal("job.status.changed", "job.progress", "job.cancel_requested")
export type StoredEventType = typeof StoredEventType.Type

/**
 * The one type vocabulary of every channel: `job.status.changed` (a transition into a status that is not terminal),
 * `job.progress` (a persisted progress report), `job.completed`, `job.failed`, `job.canceled`, `job.deleted` (the
 * transition into that terminal status), and `job.cancel_requested`: a cancel asked of a claimed or running job.
 * That one keeps a type of its own rather than being a `job.status.changed` with a flag: its status does not change
 * (the worker ends the job, later, with its own terminal event), and a consumer that acts on it (a worker) picks it
 * out by type without reading every transition.
 */
export const JobEventType = Schema.Literal(
  "job.status.changed",
  "job.progress",
  "job.completed",
  "job.failed",
  "job.canceled",
  "job.deleted",
  "job.cancel_requested"
).annotations({ identifier: "JobEventType" })
export type JobEventType = typeof JobEventType.Type

/** The event types that end a job's stream: the transitions into a terminal status. */
export type TerminalEventType = `job.${TerminalStatus}`

/**
 * The envelope type of a stored event: the one mapping from a `job_events` row's (type, status) to the wire's
 * vocabulary, used by every reader of the log.
 */
export const eventTypeOf = (stored: StoredEventType, status: JobStatus): JobEventType =>
  stored === "job.status.changed" && isTerminal(status) ? `job.${status}` : stored

/** Whether `type` is a transition into a terminal status (the last event of a job). */
export const isTerminalEventType = (type: JobEventType): type is TerminalEventType =>
  type === "job.completed" || type === "job.failed" || type === "job.canceled" || type === "job.deleted"

/**
 * One entry of a job's gap-free history: versions of a job are contiguous from 1, so a consumer that knows
 * version v asks for the events after v and can never miss or repeat one. The one shape every channel sends: SSE
 * `data`, RPC stream items, webhook `data`. `result` is the job's result on `job.completed` (else `null`), `error`
 * its error on `job.failed` (and on the retries that led to it), `artefacts` the job's artefacts on a terminal event.
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
  artefacts: Schema.NullOr(Schema.Array(Artefact)).annotations({
    description: "on a terminal event, the job's artefacts; null on the others"
  }),
  timestamp: Schema.DateTimeUtc
}) {}

/** Whether `event` is the last of its job's history (its transition into a terminal status). */
export const isTerminalEvent = (event: JobEvent): boolean => isTerminalEventType(event.type)

/** The SSE `event:` name of an event: its envelope type itself (`event: job.completed`), so `event:` = `data.type`. */
export const sseEventName = (event: JobEvent): string => event.type

/**
 * A webhook request body (Standard Webhooks): `type` and `timestamp` (the event's) at the top, as receivers of
 * earlier versions read them, and `data` the event's envelope.
 */
export class WebhookPayload extends Schema.Class<WebhookPayload>("WebhookPayload")({
  type: JobEventType,
  timestamp: Schema.DateTimeUtc,
  data: JobEvent
}) {}

/** The webhook body of an event. */
export const webhookPayloadOf = (event: JobEvent): WebhookPayload =>
  new WebhookPayload({ type: event.type, timestamp: event.timestamp, data: event }, true)
