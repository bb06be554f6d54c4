import { Schema } from "effect"
import { v7 as uuidv7 } from "uuid"

/** A job's id: a UUID the application generates (UUIDv7, so ids sort by creation time). */
export const JobId = Schema.UUID.pipe(Schema.brand("JobId")).annotations({
  identifier: "JobId",
  description: "A job id (UUIDv7)"
})
export type JobId = typeof JobId.Type

/** A new, time-ordered job id. */
export const makeJobId = (): JobId => JobId.make(uuidv7())

/** An event's id: unique per job event, the SSE `id` and the webhook `webhook-id`. */
export const EventId = Schema.UUID.pipe(Schema.brand("EventId")).annotations({ identifier: "EventId" })
export type EventId = typeof EventId.Type
