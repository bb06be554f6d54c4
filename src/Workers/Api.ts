import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication, RateLimit, WorkerRole } from "../Auth/Api.js"
import { Forbidden } from "../Domain/Auth.js"
import {
  InvalidInput,
  InvalidProgress,
  InvalidTransition,
  JobNotFound,
  NotJobHolder,
  PayloadTooLarge,
  ProgressRegression,
  UnsupportedMediaType,
  WorkerNotFound
} from "../Domain/Errors.js"
import { JobInfo } from "../Domain/Job.js"
import { AttachBody, ClaimBody, IdPath, ProgressBody, ReleaseBody, UpdateBody, WorkerPath } from "../Domain/Requests.js"
import { ClaimedJob, HeartbeatResult, ProgressAck, ReleaseResult } from "../Domain/Worker.js"

export class ClaimResult extends Schema.Class<ClaimResult>("ClaimResult")({ jobs: Schema.Array(ClaimedJob) }) {}

const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })

export class WorkersApi extends HttpApiGroup.make("workers")
  .add(
    HttpApiEndpoint.post("claim", "/v1/workers/:workerId/claim")
      .setPath(WorkerPath)
      .setPayload(ClaimBody)
      .addError(UnsupportedMediaType)
      .addSuccess(ClaimResult)
      .addError(InvalidInput)
      .annotateContext(doc(
        "Claim jobs",
        "Takes up to limit pending jobs of the queues (priority, then oldest first) under a lease of 1.5 × the " +
          "heartbeat interval; with waitSeconds, waits for work when none is ready (woken by the database)."
      ))
  )
  .add(
    HttpApiEndpoint.post("release", "/v1/workers/:workerId/release")
      .setPath(WorkerPath)
      .setPayload(ReleaseBody)
      .addError(UnsupportedMediaType)
      .addSuccess(ReleaseResult)
      .addError(InvalidInput)
      .annotateContext(doc(
        "Release held jobs",
        "Gives the worker's jobs (ids, or all) back to the queue without using up their attempt."
      ))
  )
  .add(
    HttpApiEndpoint.patch("heartbeat", "/v1/workers/:workerId")
      .setPath(WorkerPath)
      .addSuccess(HeartbeatResult)
      .addError(InvalidInput)
      .addError(WorkerNotFound)
      .annotateContext(doc(
        "Heartbeat",
        "Marks the worker alive, extends the leases of its jobs and answers the ids of its jobs whose " +
          "cancellation was requested."
      ))
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
      .annotateContext(doc(
        "Start or end a held job (or an external one)",
        "running, completed (with result), failed (with error and the progress reached; retried after the job's " +
          "backoff while attempts remain and it is retryable) or canceled, with artefacts attached in the same " +
          "transaction. Only the job's holder may change it (409 NotJobHolder); an external job (tracking external) " +
          "has no holder: any worker token reports on it by id, workerId left out, and its failure is final."
      ))
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
      .annotateContext(doc(
        "Report progress",
        "Records percent (clamped to 0–100, never backwards), step, message and data; writes at most once per " +
          "throttle window per job unless force, the last report always lands. Progress > 0 starts a claimed job."
      ))
  )
  .add(
    HttpApiEndpoint.post("attach", "/v1/jobs/:id/artefacts")
      .setPath(IdPath)
      .setPayload(AttachBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .addError(NotJobHolder)
      .annotateContext(doc(
        "Attach artefacts",
        "Attaches artefacts (name, url, contentType, size, checksum) to a job that runs; one of a name the job " +
          "has replaces it, at most 100 per job. The job's next version, with a job.progress event whose data " +
          "lists them; GET shows them as artefacts, and the job's terminal event carries them."
      ))
  )
  .addError(Forbidden)
  // applied inside Authentication (which provides the CurrentUser it checks)
  .middleware(WorkerRole)
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The worker protocol (role worker or admin): claim, heartbeat, report, end jobs")
{}
