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
