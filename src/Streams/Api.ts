import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { RateLimit, StreamAuthentication } from "../Auth/Api.js"
import { InvalidInput, JobNotFound } from "../Domain/Errors.js"
import { AfterVersion, IdPath, LastEventId, UserEventsParams } from "../Domain/Requests.js"

/** A `text/event-stream`: one message per job event (`id:` its cursor, `event:` job:status, job:progress, …). */
const EventStreamBody = HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({
  description: "Server-Sent Events; resume with Last-Event-ID"
})

const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })

export class EventsApi extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("jobEvents", "/v1/jobs/:id/events")
      .setPath(IdPath)
      .setHeaders(LastEventId)
      .setUrlParams(AfterVersion)
      .addSuccess(EventStreamBody)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .annotateContext(doc(
        "Stream a job's events",
        "Server-Sent Events of one job, each version exactly once, from afterVersion (or Last-Event-ID) until " +
          "the job is terminal. A browser's EventSource may pass its token as access_token."
      ))
  )
  .add(
    HttpApiEndpoint.get("userEvents", "/v1/events")
      .setHeaders(LastEventId)
      .setUrlParams(UserEventsParams)
      .addSuccess(EventStreamBody)
      .addError(InvalidInput)
      .annotateContext(doc(
        "Stream all of the caller's events",
        "Server-Sent Events of every job of the caller (an admin's: all), filtered by status, queue and name; " +
          "resumable with Last-Event-ID, never skipping a late commit."
      ))
  )
  .middleware(RateLimit)
  .middleware(StreamAuthentication)
  .annotate(OpenApi.Description, "Server-Sent Events: one job's events until it ends, or all of the caller's jobs")
{}
