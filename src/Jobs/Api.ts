import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication, RateLimit } from "../Auth/Api.js"
import { Forbidden } from "../Domain/Auth.js"
import {
  InvalidInput,
  InvalidTransition,
  JobNotFound,
  PayloadTooLarge,
  UnsupportedMediaType
} from "../Domain/Errors.js"
import { JobCursorPage, JobInfo, JobOutcome, JobPage, JobRef, JobsPurged, JobStatusInfo } from "../Domain/Job.js"
import {
  AfterVersion,
  EnqueueBatchBody,
  EnqueueBody,
  IdPath,
  ListParams,
  PurgeBody,
  WaitBody,
  WaitHeaders
} from "../Domain/Requests.js"
import { WebhookTargetRefused } from "../Domain/Webhook.js"

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

const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })

const longPoll = "With `Prefer: wait=N` (RFC 7240) the answer waits up to N seconds (capped by JOBWATCH_MAX_WAIT) " +
  "until the job is terminal, or until its version passes `afterVersion`; `Preference-Applied` says the wait applied."

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
      .annotateContext(doc(
        "Enqueue a job",
        "Creates a job owned by the caller: `scheduled` when runAt or delaySeconds puts it in the future, else " +
          "`pending`. 201 with its id; with an idempotencyKey the caller already used, 200 with that job " +
          "(existing: true). A W3C `traceparent` header (and `tracestate`) is the job's trace context when the body " +
          "gives none (a malformed one is ignored): the worker's span links to it."
      ))
  )
  .add(
    HttpApiEndpoint.post("enqueueBatch", "/v1/jobs/batch")
      .setPayload(EnqueueBatchBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobRefs, { status: 201 })
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(WebhookTargetRefused)
      .annotateContext(doc(
        "Enqueue jobs in one transaction",
        "Creates up to JOBWATCH_MAX_BATCH_SIZE jobs at once, all or none; a bad job refuses the batch naming " +
          "jobs[i].field. The answer lists the jobs in input order. A `traceparent` header is the trace context " +
          "of the jobs that give none."
      ))
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/jobs")
      .setUrlParams(ListParams)
      .addSuccess(JobPage)
      .addSuccess(JobCursorPage)
      .addError(InvalidInput)
      .annotateContext(doc(
        "List jobs",
        "The caller's jobs (an admin's: all), newest first, filtered by status (statuses or aliases such as " +
          "in_progress = claimed and running), queue and name. Pages by number with the total, or by cursor " +
          "(pass nextCursor back) for deep lists."
      ))
  )
  .add(
    HttpApiEndpoint.post("wait", "/v1/jobs/wait")
      .setPayload(WaitBody)
      .addError(UnsupportedMediaType)
      .addSuccess(WaitResult)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .annotateContext(doc(
        "Wait for many jobs",
        "Holds the answer until all (mode all) or the first (mode any) of the jobs is terminal, or timeoutSeconds " +
          "passed (capped by JOBWATCH_MAX_WAIT); answers their outcomes in input order and whether it timed out."
      ))
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/jobs/:id")
      .setPath(IdPath)
      .setHeaders(WaitHeaders)
      .setUrlParams(AfterVersion)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .annotateContext(doc("Read a job", `The job with its payload, progress, result or error. ${longPoll}`))
  )
  .add(
    HttpApiEndpoint.get("status", "/v1/jobs/:id/status")
      .setPath(IdPath)
      .setHeaders(WaitHeaders)
      .setUrlParams(AfterVersion)
      .addSuccess(JobStatusInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .annotateContext(doc("Read a job's status", `A lightweight view: status, progress and version. ${longPoll}`))
  )
  .add(
    HttpApiEndpoint.post("cancel", "/v1/jobs/:id/cancel")
      .setPath(IdPath)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .annotateContext(doc(
        "Cancel a job",
        "A scheduled or pending job is canceled at once; on a claimed or running job the cancellation is " +
          "requested and its worker ends it. A terminal job is 409 InvalidTransition."
      ))
  )
  .add(
    HttpApiEndpoint.del("delete", "/v1/jobs/:id")
      .setPath(IdPath)
      .addSuccess(JobInfo.annotations({ description: "The job: marked deleted, or (finished) purged and as it was" }))
      .addError(InvalidInput)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .annotateContext(doc(
        "Delete a job",
        "A scheduled or pending job is marked deleted (its waiters and streams see it end). A finished job is " +
          "purged: removed with its events and webhook deliveries, and answered as it was. A job a worker holds is 409."
      ))
  )
  .add(
    HttpApiEndpoint.post("purge", "/v1/admin/jobs/purge")
      .setPayload(PurgeBody)
      .addSuccess(JobsPurged)
      .addError(UnsupportedMediaType)
      .addError(InvalidInput)
      .addError(Forbidden)
      .annotateContext(doc(
        "Purge finished jobs (admin)",
        "Removes finished jobs matching the filter (statuses, queue, owner, finished before), with their events and " +
          "webhook deliveries, oldest finished first, up to `limit` per call: `more` says whether to call again. " +
          "Needs the admin role. Jobs older than JOBWATCH_RETENTION are purged by the service itself."
      ))
  )
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Jobs: enqueue, read, long-poll, list, wait for many, cancel, delete, purge")
{}
