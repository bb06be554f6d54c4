import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "@effect/platform"
import { Schema } from "effect"
import { CurrentUser, Forbidden, Unauthorized } from "./Domain/Auth.js"
import {
  DatabaseUnavailable,
  InvalidInput,
  InvalidProgress,
  InvalidTransition,
  JobNotFound,
  NotJobHolder,
  PayloadTooLarge,
  ProgressRegression,
  UnsupportedMediaType,
  TooManyRequests,
  WorkerNotFound
} from "./Domain/Errors.js"
import { JobCursorPage, JobInfo, JobOutcome, JobPage, JobRef, JobsPurged, JobStatusInfo } from "./Domain/Job.js"
import {
  DeliveryPage,
  WebhookEndpoint,
  WebhookList,
  WebhookNotFound,
  WebhookTargetRefused,
  WebhookWithSecret
} from "./Domain/Webhook.js"
import { ClaimedJob, HeartbeatResult, ProgressAck, ReleaseResult } from "./Domain/Worker.js"
import {
  AfterVersion,
  ClaimBody,
  DeliveriesParams,
  EnqueueBody,
  IdPath,
  LastEventId,
  ListParams,
  ProgressBody,
  PurgeBody,
  ReleaseBody,
  UpdateBody,
  UserEventsParams,
  WaitBody,
  WaitHeaders,
  WebhookBody,
  WebhookPatch,
  WebhookPath,
  WorkerPath
} from "./Domain/Requests.js"

/** The request bodies (bounded; see `Requests.ts`). */
export {
  ClaimBody,
  EnqueueBody,
  ProgressBody,
  PurgeBody,
  ReleaseBody,
  UpdateBody,
  WaitBody,
  WebhookBody,
  WebhookPatch
} from "./Domain/Requests.js"

/** `GET /health`: the process is up. */
export class Health extends Schema.Class<Health>("Health")({
  status: Schema.Literal("ok")
}) {}

const ListenerHealth = Schema.Struct({
  connected: Schema.Boolean,
  since: Schema.String,
  reconnects: Schema.Int,
  lastError: Schema.NullOr(Schema.String)
})

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  status: Schema.Literal("ready"),
  database: Schema.Literal("up"),
  listener: ListenerHealth
}) {}

/** A dependency (the database, or the LISTEN connection) is down. HTTP 503. */
export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  { message: Schema.String, database: Schema.Literal("up", "down"), listener: ListenerHealth },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}

export class OpsApi extends HttpApiGroup.make("ops")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Health))
  .add(HttpApiEndpoint.get("ready", "/ready").addSuccess(Readiness).addError(NotReady))
  .annotate(OpenApi.Description, "Liveness and readiness for supervisors and load balancers")
{}

/**
 * The authentication port: a bearer token in, the `CurrentUser` out, `Unauthorized` (401) otherwise. jobwatch's
 * own implementation verifies JWTs (`Auth.ts`); an embedding application provides its own layer instead.
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("jobwatch/Authentication", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * The worker endpoints need the `worker` role (or `admin`): checked right after authentication, before the
 * request's body is read, so that a caller without the role gets 403 whatever it sent.
 */
export class WorkerRole extends HttpApiMiddleware.Tag<WorkerRole>()("jobwatch/WorkerRole", { failure: Forbidden }) {}

/**
 * The caller's request rate (429 `TooManyRequests` with `Retry-After` over it): checked right after
 * authentication, before the request's body is read. The routes provide it (`Limits.ts`).
 */
export class RateLimit extends HttpApiMiddleware.Tag<RateLimit>()("jobwatch/RateLimit", { failure: TooManyRequests }) {}

/** A new job (201) … */
const Created = Schema.Struct({ ...JobRef.fields, existing: Schema.Literal(false) }).annotations({
  identifier: "JobCreated",
  ...HttpApiSchema.annotations({ status: 201 })
})
/** … or the job an idempotency key already named (200). */
const Existing = Schema.Struct({ ...JobRef.fields, existing: Schema.Literal(true) }).annotations({
  identifier: "JobExisting",
  description: "The job this idempotency key already created"
})

export class JobRefs extends Schema.Class<JobRefs>("JobRefs")({ jobs: Schema.Array(JobRef) }) {}

export class WaitResult extends Schema.Class<WaitResult>("WaitResult")({
  jobs: Schema.Array(JobOutcome),
  timedOut: Schema.Boolean
}) {}

export class JobsApi extends HttpApiGroup.make("jobs")
  .add(
    HttpApiEndpoint.post("enqueue", "/v1/jobs")
      .setPayload(EnqueueBody)
      .addError(UnsupportedMediaType)
      .addSuccess(Created)
      .addSuccess(Existing)
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(WebhookTargetRefused)
  )
  .add(
    HttpApiEndpoint.post("enqueueBatch", "/v1/jobs/batch")
      .setPayload(Schema.Struct({ jobs: Schema.Array(EnqueueBody) }))
      .addError(UnsupportedMediaType)
      .addSuccess(JobRefs, { status: 201 })
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(WebhookTargetRefused)
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/jobs")
      .setUrlParams(ListParams)
      .addSuccess(JobPage)
      .addSuccess(JobCursorPage)
      .addError(InvalidInput)
  )
  .add(
    HttpApiEndpoint.post("wait", "/v1/jobs/wait")
      .setPayload(WaitBody)
      .addError(UnsupportedMediaType)
      .addSuccess(WaitResult)
      .addError(InvalidInput)
      .addError(JobNotFound)
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/jobs/:id")
      .setPath(IdPath)
      .setHeaders(WaitHeaders)
      .setUrlParams(AfterVersion)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
  )
  .add(
    HttpApiEndpoint.get("status", "/v1/jobs/:id/status")
      .setPath(IdPath)
      .setHeaders(WaitHeaders)
      .setUrlParams(AfterVersion)
      .addSuccess(JobStatusInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
  )
  .add(
    HttpApiEndpoint.post("cancel", "/v1/jobs/:id/cancel")
      .setPath(IdPath)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .addError(InvalidTransition)
  )
  .add(
    HttpApiEndpoint.del("delete", "/v1/jobs/:id")
      .setPath(IdPath)
      .addSuccess(JobInfo.annotations({ description: "The job: marked deleted, or (finished) purged and as it was" }))
      .addError(InvalidInput)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .annotate(OpenApi.Summary, "Delete a job")
      .annotate(
        OpenApi.Description,
        "A scheduled or pending job is marked deleted (its waiters and streams see it end). A finished job is " +
          "purged: removed with its events and webhook deliveries, and answered as it was. A job a worker holds is 409."
      )
  )
  .add(
    HttpApiEndpoint.post("purge", "/v1/admin/jobs/purge")
      .setPayload(PurgeBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobsPurged)
      .addError(InvalidInput)
      .addError(Forbidden)
      .annotate(OpenApi.Summary, "Purge finished jobs (admin)")
      .annotate(
        OpenApi.Description,
        "Removes finished jobs matching the filter (statuses, queue, owner, finished before), with their events and " +
          "webhook deliveries, oldest finished first, up to `limit` per call: `more` says whether to call again. " +
          "Needs the admin role. Jobs older than JOBWATCH_RETENTION are purged by the service itself."
      )
  )
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Jobs: enqueue, read, long-poll, list, wait for many, cancel, delete")
{}

export class ClaimResult extends Schema.Class<ClaimResult>("ClaimResult")({ jobs: Schema.Array(ClaimedJob) }) {}

export class WorkersApi extends HttpApiGroup.make("workers")
  .add(
    HttpApiEndpoint.post("claim", "/v1/workers/:workerId/claim")
      .setPath(WorkerPath)
      .setPayload(ClaimBody)
      .addError(UnsupportedMediaType)
      .addSuccess(ClaimResult)
      .addError(InvalidInput)
  )
  .add(
    HttpApiEndpoint.post("release", "/v1/workers/:workerId/release")
      .setPath(WorkerPath)
      .setPayload(ReleaseBody)
      .addError(UnsupportedMediaType)
      .addSuccess(ReleaseResult)
      .addError(InvalidInput)
  )
  .add(
    HttpApiEndpoint.patch("heartbeat", "/v1/workers/:workerId")
      .setPath(WorkerPath)
      .addSuccess(HeartbeatResult)
      .addError(InvalidInput)
      .addError(WorkerNotFound)
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/jobs/:id")
      .setPath(IdPath)
      .setPayload(UpdateBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(InvalidProgress)
      .addError(PayloadTooLarge)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .addError(NotJobHolder)
  )
  .add(
    HttpApiEndpoint.post("progress", "/v1/jobs/:id/progress")
      .setPath(IdPath)
      .setPayload(ProgressBody)
      .addError(UnsupportedMediaType)
      .addSuccess(ProgressAck)
      .addError(InvalidInput)
      .addError(InvalidProgress)
      .addError(PayloadTooLarge)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .addError(NotJobHolder)
      .addError(ProgressRegression)
  )
  .addError(Forbidden)
  // applied inside Authentication (which provides the CurrentUser it checks)
  .middleware(WorkerRole)
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The worker protocol (role worker or admin): claim, heartbeat, report, end jobs")
{}

/**
 * Authentication of the event streams: the bearer token in the header, or (a browser's `EventSource` cannot send
 * headers) in the `access_token` query parameter, on these endpoints only.
 */
export class StreamAuthentication extends HttpApiMiddleware.Tag<StreamAuthentication>()("jobwatch/StreamAuthentication", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: {
    bearer: HttpApiSecurity.bearer,
    accessToken: HttpApiSecurity.apiKey({ key: "access_token", in: "query" })
  }
}) {}

/** A `text/event-stream`: one message per job event (`id:` its cursor, `event:` its type, e.g. `job.completed`). */
const EventStreamBody = HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({
  description: "Server-Sent Events; resume with Last-Event-ID"
})
export class EventsApi extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("jobEvents", "/v1/jobs/:id/events")
      .setPath(IdPath)
      .setHeaders(LastEventId)
      .setUrlParams(AfterVersion)
      .addSuccess(EventStreamBody)
      .addError(InvalidInput)
      .addError(JobNotFound)
  )
  .add(
    HttpApiEndpoint.get("userEvents", "/v1/events")
      .setHeaders(LastEventId)
      .setUrlParams(UserEventsParams)
      .addSuccess(EventStreamBody)
      .addError(InvalidInput)
  )
  .middleware(RateLimit)
  .middleware(StreamAuthentication)
  .annotate(OpenApi.Description, "Server-Sent Events: one job's events until it ends, or all of the caller's jobs")
{}

export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(HttpApiEndpoint.get("list", "/v1/webhooks").addSuccess(WebhookList))
  .add(
    HttpApiEndpoint.post("create", "/v1/webhooks")
      .setPayload(WebhookBody)
      .addError(UnsupportedMediaType)
      .addSuccess(WebhookWithSecret, { status: 201 })
      .addError(InvalidInput)
      .addError(WebhookTargetRefused)
  )
  .add(HttpApiEndpoint.get("get", "/v1/webhooks/:id").setPath(WebhookPath).addSuccess(WebhookEndpoint).addError(WebhookNotFound))
  .add(
    HttpApiEndpoint.put("update", "/v1/webhooks/:id")
      .setPath(WebhookPath)
      .setPayload(WebhookPatch)
      .addError(UnsupportedMediaType)
      .addSuccess(WebhookEndpoint)
      .addError(InvalidInput)
      .addError(WebhookNotFound)
      .addError(WebhookTargetRefused)
  )
  .add(HttpApiEndpoint.del("delete", "/v1/webhooks/:id").setPath(WebhookPath).addSuccess(WebhookEndpoint).addError(WebhookNotFound))
  .add(
    HttpApiEndpoint.post("rotateSecret", "/v1/webhooks/:id/rotate-secret")
      .setPath(WebhookPath)
      .addSuccess(WebhookWithSecret)
      .addError(WebhookNotFound)
  )
  .add(
    HttpApiEndpoint.get("deliveries", "/v1/webhooks/:id/deliveries")
      .setPath(WebhookPath)
      .setUrlParams(DeliveriesParams)
      .addSuccess(DeliveryPage)
      .addError(InvalidInput)
      .addError(WebhookNotFound)
  )
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Webhook endpoints: signed, retried deliveries of your jobs' events (Standard Webhooks)")
{}

/** The HTTP API definition: import it in clients without pulling in any server code. */
export class Api extends HttpApi.make("jobwatch")
  .add(OpsApi)
  .add(JobsApi)
  .add(WorkersApi)
  .add(EventsApi)
  .add(WebhooksApi)
  // a database that does not answer, on any endpoint (mapped from the repositories' defects in one place)
  .addError(DatabaseUnavailable)
  .annotate(OpenApi.Title, "jobwatch")
  .annotate(OpenApi.Description, "Job tracking and notifications on PostgreSQL")
{}
