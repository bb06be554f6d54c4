import { HttpApi, OpenApi } from "@effect/platform"
import { DatabaseUnavailable } from "./Domain/Errors.js"
import { OpsApi } from "./Health/Api.js"
import { JobLibApi } from "./JobLib/Api.js"
import { JobsApi } from "./Jobs/Api.js"
import { EventsApi } from "./Streams/Api.js"
import { WebhooksApi } from "./Webhooks/Api.js"
import { WorkersApi } from "./Workers/Api.js"
import { version } from "./version.js"

export { Authentication, RateLimit, SocketAuthentication, StreamAuthentication, WorkerRole } from "./Auth/Api.js"
export type { SocketHandshake } from "./Auth/Api.js"
export {
  ClaimBody,
  EnqueueBatchBody,
  EnqueueBody,
  ProgressBody,
  ReleaseBody,
  UpdateBody,
  WaitBody,
  WebhookBody,
  WebhookPatch
} from "./Domain/Requests.js"
export { Health, NotReady, OpsApi, Readiness } from "./Health/Api.js"
export { JobLibApi, JobTypeCreated, JobTypeExisting } from "./JobLib/Api.js"
export { JobRefs, JobsApi, WaitResult } from "./Jobs/Api.js"
export { EventsApi } from "./Streams/Api.js"
export { WebhooksApi } from "./Webhooks/Api.js"
export { ClaimResult, WorkersApi } from "./Workers/Api.js"

/** The HTTP API definition: import it in clients without pulling in any server code. */
export class Api extends HttpApi.make("jobwatch")
  .add(OpsApi)
  .add(JobsApi)
  .add(WorkersApi)
  .add(EventsApi)
  .add(WebhooksApi)
  .add(JobLibApi)
  // a database that does not answer, on any endpoint (mapped from the repositories' defects in one place)
  .addError(DatabaseUnavailable)
  .annotate(OpenApi.Title, "jobwatch")
  .annotate(OpenApi.Version, version)
  .annotate(OpenApi.Description, "Job tracking and notifications on PostgreSQL")
{}
