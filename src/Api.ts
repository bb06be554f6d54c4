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
  TooManyRequests,
  WorkerNotFound
} from "./Domain/Errors.js"
import { JobCursorPage, JobInfo, JobOutcome, JobPage, JobRef, JobStatusInfo } from "./Domain/Job.js"
import {
  DeliveryPage,
  WebhookEndpoint,
  WebhookList,
  WebhookNotFound,
  WebhookTargetRefused,
  WebhookWithSecret
} from "./Domain/Webhook.js"
import { ClaimedJob, HeartbeatResult, ProgressAck, ReleaseResult } from "./Domain/Worker.js"

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

// ---- request bodies: types here, ranges and limits checked by the services (400 naming the field) ----

const Backoff = Schema.Struct({
  delaySeconds: Schema.optional(Schema.Number),
  maxDelaySeconds: Schema.optional(Schema.Number),
  multiplier: Schema.optional(Schema.Number)
})

/** A job to enqueue. Give `runAt` or `delaySeconds`, not both. */
export const EnqueueBody = Schema.Struct({
  name: Schema.String,
  queue: Schema.optional(Schema.String),
  payload: Schema.optional(Schema.Unknown),
  priority: Schema.optional(Schema.Number),
  runAt: Schema.optional(Schema.String).annotations({ description: "ISO-8601 time" }),
  delaySeconds: Schema.optional(Schema.Number),
  maxAttempts: Schema.optional(Schema.Number),
  timeoutSeconds: Schema.optional(Schema.Number),
  idempotencyKey: Schema.optional(Schema.String),
  backoff: Schema.optional(Backoff),
  webhookUrl: Schema.optional(Schema.String).annotations({
    description: "the job's own callback: receives its job.completed or job.failed webhook"
  }),
  webhookSecret: Schema.optional(Schema.String).annotations({
    description: "signs that callback (Standard Webhooks): whsec_ and the base64 of 24 to 64 bytes; never answered back"
  })
}).annotations({ identifier: "EnqueueBody" })
export type EnqueueBody = typeof EnqueueBody.Type

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

export const WaitBody = Schema.Struct({
  ids: Schema.Array(Schema.String),
  mode: Schema.optionalWith(Schema.Literal("all", "any"), { default: () => "all" as const }),
  timeoutSeconds: Schema.optional(Schema.Number)
}).annotations({ identifier: "WaitBody" })

export class WaitResult extends Schema.Class<WaitResult>("WaitResult")({
  jobs: Schema.Array(JobOutcome),
  timedOut: Schema.Boolean
}) {}

const IdPath = Schema.Struct({ id: Schema.String })

/** `Prefer: wait=N` (RFC 7240): answer when the job is terminal (or changed after `afterVersion`), or N s passed. */
const WaitHeaders = Schema.Struct({
  prefer: Schema.optional(Schema.String).annotations({
    description: "wait=N: hold the answer up to N seconds until the job is terminal, or changed after afterVersion"
  })
})
const AfterVersion = Schema.Struct({ afterVersion: Schema.optional(Schema.NumberFromString) })

const ListParams = Schema.Struct({
  status: Schema.optional(Schema.String).annotations({ description: "statuses or aliases, comma-separated" }),
  queue: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  page: Schema.optional(Schema.NumberFromString),
  limit: Schema.optional(Schema.NumberFromString),
  cursor: Schema.optional(Schema.String).annotations({ description: "keyset paging: nextCursor of the previous page" })
})

export class JobsApi extends HttpApiGroup.make("jobs")
  .add(
    HttpApiEndpoint.post("enqueue", "/v1/jobs")
      .setPayload(EnqueueBody)
      .addSuccess(Created)
      .addSuccess(Existing)
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(WebhookTargetRefused)
  )
  .add(
    HttpApiEndpoint.post("enqueueBatch", "/v1/jobs/batch")
      .setPayload(Schema.Struct({ jobs: Schema.Array(EnqueueBody) }))
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
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .addError(InvalidTransition)
  )
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Jobs: enqueue, read, long-poll, list, wait for many, cancel, delete")
{}

export const ClaimBody = Schema.Struct({
  queues: Schema.optional(Schema.Array(Schema.String)),
  names: Schema.optional(Schema.Array(Schema.String)),
  limit: Schema.optional(Schema.Number),
  waitSeconds: Schema.optional(Schema.Number),
  start: Schema.optional(Schema.Boolean).annotations({ description: "start the jobs as they are claimed (running at once)" }),
  heartbeatSeconds: Schema.optional(Schema.Number).annotations({
    description: "how often this worker heartbeats (its leases last 1.5 × this); default the service's"
  })
}).annotations({ identifier: "ClaimBody" })

export class ClaimResult extends Schema.Class<ClaimResult>("ClaimResult")({ jobs: Schema.Array(ClaimedJob) }) {}

export const UpdateBody = Schema.Struct({
  workerId: Schema.String,
  status: Schema.Literal("running", "completed", "failed", "canceled"),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Struct({
    code: Schema.optional(Schema.String),
    message: Schema.String,
    retryable: Schema.optional(Schema.Boolean)
  })),
  message: Schema.optional(Schema.String)
}).annotations({ identifier: "UpdateBody" })

export const ProgressBody = Schema.Struct({
  workerId: Schema.String,
  percent: Schema.Number,
  step: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Unknown),
  force: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "ProgressBody" })

const WorkerPath = Schema.Struct({ workerId: Schema.String })

/** Which of its jobs a worker lets go (all when `ids` is absent): back to the queue, their attempt not used up. */
export const ReleaseBody = Schema.Struct({ ids: Schema.optional(Schema.Array(Schema.String)) }).annotations({
  identifier: "ReleaseBody"
})

export class WorkersApi extends HttpApiGroup.make("workers")
  .add(
    HttpApiEndpoint.post("claim", "/v1/workers/:workerId/claim")
      .setPath(WorkerPath)
      .setPayload(ClaimBody)
      .addSuccess(ClaimResult)
      .addError(InvalidInput)
  )
  .add(
    HttpApiEndpoint.post("release", "/v1/workers/:workerId/release")
      .setPath(WorkerPath)
      .setPayload(ReleaseBody)
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

/** A `text/event-stream`: one message per job event (`id:` its cursor, `event:` job:status, job:progress, …). */
const EventStreamBody = HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({
  description: "Server-Sent Events; resume with Last-Event-ID"
})
const LastEventId = Schema.Struct({
  "last-event-id": Schema.optional(Schema.String).annotations({ description: "resume after this event's id" })
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
      .setUrlParams(Schema.Struct({
        status: Schema.optional(Schema.String),
        queue: Schema.optional(Schema.String),
        name: Schema.optional(Schema.String)
      }))
      .addSuccess(EventStreamBody)
      .addError(InvalidInput)
  )
  .middleware(RateLimit)
  .middleware(StreamAuthentication)
  .annotate(OpenApi.Description, "Server-Sent Events: one job's events until it ends, or all of the caller's jobs")
{}

export const WebhookBody = Schema.Struct({
  url: Schema.String,
  eventTypes: Schema.Array(Schema.String).annotations({ description: "progress, completed, failed, canceled or all" }),
  description: Schema.optional(Schema.NullOr(Schema.String)),
  active: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "WebhookBody" })

/** The fields of an endpoint to change: any of `WebhookBody`'s. */
export const WebhookPatch = Schema.Struct({
  url: Schema.optional(WebhookBody.fields.url),
  eventTypes: Schema.optional(WebhookBody.fields.eventTypes),
  description: WebhookBody.fields.description,
  active: WebhookBody.fields.active
}).annotations({ identifier: "WebhookPatch" })

const WebhookPath = Schema.Struct({ id: Schema.String })

export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(HttpApiEndpoint.get("list", "/v1/webhooks").addSuccess(WebhookList))
  .add(
    HttpApiEndpoint.post("create", "/v1/webhooks")
      .setPayload(WebhookBody)
      .addSuccess(WebhookWithSecret, { status: 201 })
      .addError(InvalidInput)
      .addError(WebhookTargetRefused)
  )
  .add(HttpApiEndpoint.get("get", "/v1/webhooks/:id").setPath(WebhookPath).addSuccess(WebhookEndpoint).addError(WebhookNotFound))
  .add(
    HttpApiEndpoint.put("update", "/v1/webhooks/:id")
      .setPath(WebhookPath)
      .setPayload(WebhookPatch)
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
      .setUrlParams(Schema.Struct({ page: Schema.optional(Schema.NumberFromString), limit: Schema.optional(Schema.NumberFromString) }))
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
