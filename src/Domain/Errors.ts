import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import { JobStatus } from "./JobStatus.js"

/** No job with this id (or none the caller may see). HTTP 404. */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()(
  "JobNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "The job does not exist or is not yours" })
) {
  constructor(props: { readonly id: string; readonly message?: string }, disableValidation?: boolean) {
    super({ id: props.id, message: props.message ?? `Job ${props.id} not found` }, disableValidation)
  }
}

/** The job is not in a status that allows this change; `from` is the status actually found. HTTP 409. */
export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()(
  "InvalidTransition",
  { id: Schema.String, from: JobStatus, to: JobStatus, message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The job's status does not allow this change" })
) {
  constructor(
    props: { readonly id: string; readonly from: JobStatus; readonly to: JobStatus; readonly message?: string },
    disableValidation?: boolean
  ) {
    super({
      ...props,
      message: props.message ?? `Job ${props.id} cannot go from ${props.from} to ${props.to}`
    }, disableValidation)
  }
}

/**
 * A request field is missing or wrong; `field` names it (a dotted path such as `jobs[3].name`) and the message
 * starts with it. HTTP 400.
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()(
  "InvalidInput",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "A field is missing or invalid" })
) {
  constructor(props: { readonly field: string; readonly message: string }, disableValidation?: boolean) {
    const message = props.message.startsWith(props.field) ? props.message : `${props.field} ${props.message}`
    super({ field: props.field, message }, disableValidation)
  }
}

/** A payload (or result) is larger than the configured limit. HTTP 413. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { field: Schema.String, size: Schema.Number, limit: Schema.Number, message: Schema.String },
  HttpApiSchema.annotations({ status: 413, description: "The payload is larger than the limit" })
) {
  constructor(
    props: { readonly field: string; readonly size: number; readonly limit: number; readonly message?: string },
    disableValidation?: boolean
  ) {
    super({
      ...props,
      message: props.message ?? `${props.field} is ${props.size} bytes, over the limit of ${props.limit} bytes`
    }, disableValidation)
  }
}

/**
 * The job is not held by the worker acting on it (another worker holds it, or none does). The holder is not named:
 * a worker learns nothing of other workers. HTTP 409.
 */
export class NotJobHolder extends Schema.TaggedError<NotJobHolder>()(
  "NotJobHolder",
  { id: Schema.String, workerId: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The acting worker does not hold the job" })
) {
  constructor(
    props: { readonly id: string; readonly workerId: string; readonly message?: string },
    disableValidation?: boolean
  ) {
    super({
      ...props,
      message: props.message ?? `Job ${props.id} is not held by worker ${props.workerId}`
    }, disableValidation)
  }
}

/** A progress report that is not a finite number from 0 to 100 (after clamping), or otherwise malformed. HTTP 400. */
export class InvalidProgress extends Schema.TaggedError<InvalidProgress>()(
  "InvalidProgress",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "The progress report is invalid" })
) {
  constructor(props: { readonly field: string; readonly message: string }, disableValidation?: boolean) {
    const message = props.message.startsWith(props.field) ? props.message : `${props.field} ${props.message}`
    super({ field: props.field, message }, disableValidation)
  }
}

/** Progress never goes backwards: the job is already further than the report. HTTP 409. */
export class ProgressRegression extends Schema.TaggedError<ProgressRegression>()(
  "ProgressRegression",
  { id: Schema.String, current: Schema.Number, requested: Schema.Number, message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "Progress would go backwards" })
) {
  constructor(
    props: { readonly id: string; readonly current: number; readonly requested: number; readonly message?: string },
    disableValidation?: boolean
  ) {
    super({
      ...props,
      message: props.message ??
        `Job ${props.id} is at ${props.current}%: progress cannot go back to ${props.requested}%`
    }, disableValidation)
  }
}

/** No worker with this id is registered (it never claimed, or was forgotten after going silent). HTTP 404. */
export class WorkerNotFound extends Schema.TaggedError<WorkerNotFound>()(
  "WorkerNotFound",
  { workerId: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "The worker is not registered (or was forgotten)" })
) {
  constructor(props: { readonly workerId: string; readonly message?: string }, disableValidation?: boolean) {
    super({
      workerId: props.workerId,
      message: props.message ??
        `Worker ${props.workerId} is not registered (or was forgotten after going silent): claim again to register`
    }, disableValidation)
  }
}

/** A request body in a format the API does not read (it reads JSON: `application/json`). HTTP 415. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { contentType: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 415, description: "The body is not JSON" })
) {
  constructor(props: { readonly contentType: string; readonly message?: string }, disableValidation?: boolean) {
    super({
      contentType: props.contentType,
      message: props.message ?? `the body must be application/json, not ${props.contentType}`
    }, disableValidation)
  }
}

/**
 * The caller is over one of its limits: its request rate (`limit: "rate"`) or its open event streams and waiting
 * requests (`limit: "streams"`). Try again after `retryAfter` seconds (also the `Retry-After` header). HTTP 429.
 */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  { limit: Schema.Literal("rate", "streams"), retryAfter: Schema.Number, message: Schema.String },
  HttpApiSchema.annotations({ status: 429, description: "Over the caller's request rate or open streams" })
) {
  constructor(
    props: { readonly limit: "rate" | "streams"; readonly retryAfter: number; readonly max?: number; readonly message?: string },
    disableValidation?: boolean
  ) {
    super({
      limit: props.limit,
      retryAfter: props.retryAfter,
      message: props.message ?? (props.limit === "rate"
        ? `too many requests: over ${props.max ?? "the"} requests per second; retry after ${props.retryAfter} s`
        : `too many open streams and waiting requests: at most ${props.max ?? "a limited number"} at once`)
    }, disableValidation)
  }
}

/** The database does not answer (down, unreachable, or out of connections). Retry later. HTTP 503. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503, description: "The database is unavailable; retry later" })
) {
  constructor(props: { readonly message?: string } = {}, disableValidation?: boolean) {
    super({ message: props.message ?? "the database is unavailable; retry later" }, disableValidation)
  }
}
