import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication, RateLimit } from "../Auth/Api.js"
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
import {
  JobLibWorkerPath,
  JobType,
  JobTypeLimitReached,
  JobTypeList,
  JobTypeListParams,
  JobTypeNotFound,
  JobTypePath,
  JobTypeRegistration,
  PayloadInvalid,
  PushParams,
  RegisterBody,
  RoomPath,
  SchemaConflict,
  TaskClaimBody,
  TaskClaimResult,
  TaskPath,
  TaskUpdateBody,
  UnregisterPath
} from "../Domain/JobLib.js"
import { AfterVersion, JsonValue, WaitHeaders } from "../Domain/Requests.js"
import { HeartbeatResult } from "../Domain/Worker.js"

/** A type registered now, or revived (201) … */
export const JobTypeCreated = Schema.Struct({
  ...JobTypeRegistration.fields,
  outcome: Schema.Literal("created", "revived")
}).annotations({ identifier: "JobTypeCreated", ...HttpApiSchema.annotations({ status: 201 }) })
/** … or registered already with an equal schema: the worker is linked to it (200). */
export const JobTypeExisting = Schema.Struct({
  ...JobTypeRegistration.fields,
  outcome: Schema.Literal("existing")
}).annotations({ identifier: "JobTypeExisting" })

const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })
const rooms = "A room's job types are its own and @global's (a room's own first, by name); @global's are only @global's."

export class JobLibApi extends HttpApiGroup.make("joblib")
  .add(
    HttpApiEndpoint.put("register", "/v1/joblib/rooms/:roomId/jobs")
      .setPath(RoomPath)
      .setPayload(RegisterBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobTypeExisting)
      .addSuccess(JobTypeCreated)
      .addError(InvalidInput)
      .addError(SchemaConflict)
      .addError(JobTypeLimitReached)
      .annotateContext(doc(
        "Register a job type",
        "Registers name (<public|private>:<category>:<name>) for the room, or for every room as @global (worker " +
          "role), with the JSON Schema (draft 2020-12) of its tasks' payloads, and links the worker (workerId, " +
          "default the token's sub) that serves it. The same name with an equal schema (compared as JSON values) " +
          "answers 200 and links the worker; another schema is 409 SchemaConflict with both digests; a type " +
          "removed as an orphan is revived with the new schema (201)."
      ))
  )
  .add(
    HttpApiEndpoint.get("listTypes", "/v1/joblib/rooms/:roomId/jobs")
      .setPath(RoomPath)
      .setUrlParams(JobTypeListParams)
      .addSuccess(JobTypeList)
      .addError(InvalidInput)
      .annotateContext(doc("List job types", `${rooms} Private types are listed to their registrant only.`))
  )
  .add(
    HttpApiEndpoint.get("getType", "/v1/joblib/rooms/:roomId/jobs/:jobName")
      .setPath(JobTypePath)
      .addSuccess(JobType)
      .addError(JobTypeNotFound)
      .annotateContext(doc("A job type", `The room's type of this name, else @global's. ${rooms}`))
  )
  .add(
    HttpApiEndpoint.del("unregister", "/v1/joblib/rooms/:roomId/jobs/:jobName/workers/:workerId")
      .setPath(UnregisterPath)
      .addSuccess(Schema.Void, { status: 204 })
      .addError(JobTypeNotFound)
      .annotateContext(doc(
        "Stop serving a job type",
        "The worker no longer claims the type's tasks; a type no worker serves and no task waits for is removed."
      ))
  )
  .add(
    HttpApiEndpoint.post("push", "/v1/joblib/rooms/:roomId/tasks/:jobName")
      .setPath(JobTypePath)
      .setUrlParams(PushParams)
      .setPayload(JsonValue("the task's payload, checked against the job type's schema"))
      .addError(UnsupportedMediaType)
      .addSuccess(JobInfo, { status: 201 })
      .addError(InvalidInput)
      .addError(PayloadTooLarge)
      .addError(JobTypeNotFound)
      .addError(PayloadInvalid)
      .annotateContext(doc(
        "Push a task",
        "The body is the payload. The type must be the room's or @global's, and public or the caller's own " +
          "(404 otherwise); the payload must match its schema (422 with each error's path and message). The task " +
          "is a job (queue: the room, name: the type's) with the type's maxAttempts (default 1); priority and " +
          "delaySeconds as query parameters."
      ))
  )
  .add(
    HttpApiEndpoint.post("claim", "/v1/joblib/tasks/claim")
      .setPayload(TaskClaimBody)
      .addError(UnsupportedMediaType)
      .addSuccess(TaskClaimResult)
      .addError(InvalidInput)
      .addError(WorkerNotFound)
      .annotateContext(doc(
        "Claim tasks",
        "The next tasks (priority, then oldest) of the types the worker serves, in rooms when given, leased for " +
          "1.5 × heartbeatSeconds; with waitSeconds, waits for one (woken by the database, no polling). The worker " +
          "is <sub> or <sub>:<name> of the token; 404 WorkerNotFound when it is not registered (it registered no " +
          "type, or went silent past the worker timeout): register again."
      ))
  )
  .add(
    HttpApiEndpoint.get("task", "/v1/joblib/tasks/:taskId")
      .setPath(TaskPath)
      .setHeaders(WaitHeaders)
      .setUrlParams(AfterVersion)
      .addSuccess(JobInfo)
      .addError(JobNotFound)
      .annotateContext(doc(
        "A task",
        "Visible to its creator, the worker holding it, and admins. With Prefer: wait=N the answer waits up to N " +
          "seconds until the task is terminal (or its version passes afterVersion)."
      ))
  )
  .add(
    HttpApiEndpoint.patch("updateTask", "/v1/joblib/tasks/:taskId")
      .setPath(TaskPath)
      .setPayload(TaskUpdateBody)
      .addError(UnsupportedMediaType)
      .addSuccess(JobInfo)
      .addError(InvalidInput)
      .addError(InvalidProgress)
      .addError(PayloadTooLarge)
      .addError(JobNotFound)
      .addError(InvalidTransition)
      .addError(NotJobHolder)
      .addError(ProgressRegression)
      .annotateContext(doc(
        "Report on a held task",
        "By its holder: progress (percent, step, message), then status running, completed (result), failed " +
          "(error: a message or { code, message, retryable }) or canceled (cancelled is accepted)."
      ))
  )
  .add(
    HttpApiEndpoint.patch("heartbeat", "/v1/joblib/workers/:workerId")
      .setPath(JobLibWorkerPath)
      .addSuccess(HeartbeatResult)
      .addError(InvalidInput)
      .addError(WorkerNotFound)
      .annotateContext(doc(
        "Worker heartbeat",
        "Marks the worker alive and extends its tasks' leases; answers its tasks whose cancellation was requested. " +
          "A worker silent past the worker timeout is forgotten: its running tasks fail, its types may be removed."
      ))
  )
  .addError(Forbidden)
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Job types and rooms: registered job types with JSON Schemas, tasks, their workers")
{}
