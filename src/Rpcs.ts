import { Rpc, RpcGroup, RpcMiddleware } from "@effect/rpc"
import { Schema } from "effect"
import {
  ClaimBody,
  EnqueueBatchBody,
  EnqueueBody,
  ListOptions,
  PageNumber,
  PageSize,
  AttachBody,
  ProgressBody,
  PurgeBody,
  ReleaseBody,
  RpcPayloads,
  UuidFromString,
  WebhookBody,
  WebhookPatch,
  WorkerIdText,
  JsonValue,
  Priority,
  seconds
} from "./Domain/Requests.js"
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
import { JobCursorPage, JobInfo, JobOutcome, JobPage, JobRef, JobsPurged, JobStatusInfo } from "./Domain/Job.js"
import { JobEvent } from "./Domain/JobEvent.js"
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
  JobType,
  JobTypeLimitReached,
  JobTypeList,
  JobTypeName,
  JobTypeNotFound,
  JobTypeRegistration,
  PayloadInvalid,
  RegisterBody,
  RoomId,
  SchemaConflict,
  TaskClaimBody,
  TaskClaimResult,
  taskUpdateFields,
  taskUpdateRules
} from "./Domain/JobLib.js"

/**
 * The RPC authentication port: `Authorization: Bearer <token>` from the request's headers in, the `CurrentUser`
 * out, `Unauthorized` otherwise. jobwatch's layer verifies JWTs (`Auth.ts`); an embedding app provides its own.
 */
export class RpcAuthentication extends RpcMiddleware.Tag<RpcAuthentication>()("jobwatch/RpcAuthentication", {
  provides: CurrentUser,
  failure: Unauthorized
}) {}

/**
 * Around every call, inside authentication: the caller's request rate and open streams and waits (429
 * `TooManyRequests`), and `DatabaseUnavailable` when the database does not answer. The routes provide it.
 */
export class RpcLimits extends RpcMiddleware.Tag<RpcLimits>()("jobwatch/RpcLimits", {
  failure: Schema.Union(TooManyRequests, DatabaseUnavailable),
  wrap: true
}) {}


// the payloads are the HTTP API's schemas (`Domain/Requests.ts`): one that does not decode is InvalidInput naming the
// field (see `Http/rpcFrames.ts`)
const { cursor: Cursor, filter: Filter, id: Id, ids: Ids, wait: Wait } = RpcPayloads
const WebhookId = { id: UuidFromString }

/** An event of the caller's stream, with the cursor to resume after it. */
export class StreamedEvent extends Schema.Class<StreamedEvent>("StreamedEvent")({
  cursor: Schema.String,
  event: JobEvent
}) {}

const WebhookErrors = Schema.Union(InvalidInput, WebhookNotFound, WebhookTargetRefused, Unauthorized)
const UserErrors = Schema.Union(InvalidInput, JobNotFound, Unauthorized)
const WorkerErrors = Schema.Union(
  InvalidInput,
  InvalidProgress,
  PayloadTooLarge,
  JobNotFound,
  InvalidTransition,
  NotJobHolder,
  ProgressRegression,
  WorkerNotFound,
  Forbidden,
  Unauthorized
)

const JobType_ = { roomId: RoomId, jobName: JobTypeName }
const TypeErrors = Schema.Union(InvalidInput, JobTypeNotFound, Forbidden, Unauthorized)

/** The Effect RPC API: the HTTP API's operations, with `JobWatch` and `EventsWatch` as streams. */
export class Rpcs extends RpcGroup.make(
  Rpc.make("JobEnqueue", {
    payload: EnqueueBody,
    success: JobRef,
    error: Schema.Union(InvalidInput, PayloadTooLarge, WebhookTargetRefused, Unauthorized)
  }),
  Rpc.make("JobEnqueueBatch", {
    payload: EnqueueBatchBody,
    success: Schema.Array(JobRef),
    error: Schema.Union(InvalidInput, PayloadTooLarge, WebhookTargetRefused, Unauthorized)
  }),
  Rpc.make("JobGet", { payload: Wait, success: JobInfo, error: UserErrors }),
  Rpc.make("JobStatus", { payload: Wait, success: JobStatusInfo, error: UserErrors }),
  Rpc.make("JobList", {
    payload: ListOptions,
    success: Schema.Union(JobPage, JobCursorPage),
    error: Schema.Union(InvalidInput, Unauthorized)
  }),
  Rpc.make("JobCancel", { payload: Id, success: JobInfo, error: Schema.Union(InvalidInput, JobNotFound, InvalidTransition, Unauthorized) }),
  Rpc.make("JobDelete", { payload: Id, success: JobInfo, error: Schema.Union(InvalidInput, JobNotFound, InvalidTransition, Unauthorized) }),
  Rpc.make("JobsPurge", {
    payload: PurgeBody,
    success: JobsPurged,
    error: Schema.Union(InvalidInput, Forbidden, Unauthorized)
  }),
  Rpc.make("JobWait", { payload: Id, success: JobOutcome, error: UserErrors }),
  Rpc.make("JobWaitAll", { payload: Ids, success: Schema.Array(JobOutcome), error: UserErrors }),
  Rpc.make("JobWaitFirst", { payload: Ids, success: JobOutcome, error: UserErrors }),
  Rpc.make("JobWatch", {
    payload: { ...Id, afterVersion: Wait.afterVersion },
    success: JobEvent,
    error: UserErrors,
    stream: true
  }),
  Rpc.make("EventsWatch", {
    payload: { ...Filter, cursor: Cursor },
    success: StreamedEvent,
    error: Schema.Union(InvalidInput, Unauthorized),
    stream: true
  }),
  Rpc.make("WorkerClaim", {
    payload: { workerId: WorkerIdText, ...ClaimBody.fields },
    success: Schema.Array(ClaimedJob),
    error: WorkerErrors
  }),
  Rpc.make("WorkerRelease", {
    payload: { workerId: WorkerIdText, ...ReleaseBody.fields },
    success: ReleaseResult,
    error: WorkerErrors
  }),
  Rpc.make("WorkerHeartbeat", { payload: { workerId: WorkerIdText }, success: HeartbeatResult, error: WorkerErrors }),
  Rpc.make("JobUpdate", {
    payload: Schema.Struct({ ...Id, ...RpcPayloads.update }).pipe(Schema.filter(RpcPayloads.errorWhenFailed)),
    success: JobInfo,
    error: WorkerErrors
  }),
  Rpc.make("JobProgress", { payload: { ...Id, ...ProgressBody.fields }, success: ProgressAck, error: WorkerErrors }),
  Rpc.make("JobAttach", { payload: { ...Id, ...AttachBody.fields }, success: JobInfo, error: WorkerErrors }),
  Rpc.make("JobTypeRegister", {
    payload: { roomId: RoomId, ...RegisterBody.fields },
    success: JobTypeRegistration,
    error: Schema.Union(InvalidInput, SchemaConflict, JobTypeLimitReached, Forbidden, Unauthorized)
  }),
  Rpc.make("JobTypeList", {
    payload: {
      roomId: RoomId,
      limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 500))),
      offset: Schema.optional(Schema.Int.pipe(Schema.between(0, 1_000_000)))
    },
    success: JobTypeList,
    error: TypeErrors
  }),
  Rpc.make("JobTypeGet", { payload: JobType_, success: JobType, error: TypeErrors }),
  Rpc.make("JobTypeUnregister", { payload: { ...JobType_, workerId: WorkerIdText }, error: TypeErrors }),
  Rpc.make("TaskPush", {
    payload: {
      ...JobType_,
      payload: JsonValue("the task's payload, checked against the job type's schema"),
      priority: Schema.optional(Priority),
      delay: Schema.optional(seconds("delay"))
    },
    success: JobInfo,
    error: Schema.Union(InvalidInput, PayloadTooLarge, JobTypeNotFound, PayloadInvalid, Unauthorized)
  }),
  Rpc.make("TaskClaim", { payload: TaskClaimBody, success: TaskClaimResult, error: WorkerErrors }),
  Rpc.make("TaskGet", {
    payload: { taskId: Id.id, wait: Wait.wait, afterVersion: Wait.afterVersion },
    success: JobInfo,
    error: UserErrors
  }),
  Rpc.make("TaskUpdate", {
    payload: Schema.Struct({ taskId: Id.id, ...taskUpdateFields }).pipe(
      Schema.filter(taskUpdateRules[0]),
      Schema.filter(taskUpdateRules[1])
    ),
    success: JobInfo,
    error: WorkerErrors
  }),
  Rpc.make("TaskWorkerHeartbeat", { payload: { workerId: WorkerIdText }, success: HeartbeatResult, error: WorkerErrors }),
  Rpc.make("WebhookList", { success: WebhookList, error: Schema.Union(InvalidInput, Unauthorized) }),
  Rpc.make("WebhookCreate", { payload: WebhookBody, success: WebhookWithSecret, error: WebhookErrors }),
  Rpc.make("WebhookGet", { payload: WebhookId, success: WebhookEndpoint, error: WebhookErrors }),
  Rpc.make("WebhookUpdate", { payload: { ...WebhookId, ...WebhookPatch.fields }, success: WebhookEndpoint, error: WebhookErrors }),
  Rpc.make("WebhookDelete", { payload: WebhookId, success: WebhookEndpoint, error: WebhookErrors }),
  Rpc.make("WebhookRotateSecret", { payload: WebhookId, success: WebhookWithSecret, error: WebhookErrors }),
  Rpc.make("WebhookDeliveries", {
    payload: { ...WebhookId, page: Schema.optional(PageNumber), limit: Schema.optional(PageSize) },
    success: DeliveryPage,
    error: WebhookErrors
  })
).middleware(RpcLimits).middleware(RpcAuthentication) {}
