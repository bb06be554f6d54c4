import { HttpApiSchema } from "@effect/platform"
import { Duration, Schema } from "effect"
import { ClaimedJob } from "./Worker.js"
import { ArtefactInputs } from "./Job.js"
import {
  ClaimLimit,
  ErrorMessage,
  IntParam,
  JobIdFromString,
  JsonValue,
  MaxAttempts,
  NoteText,
  Percent,
  Priority,
  seconds,
  StepText,
  WorkerIdText
} from "./Requests.js"
import { FailureBody } from "./Requests.js"

// The job library's surface (`/v1/joblib/...`): job types registered per room or for every room (`@global`), with
// the JSON Schema of their tasks' payloads; tasks (ordinary jobs, their queue the room, their name the type's)
// pushed to rooms and claimed by the workers that registered their type.

/** The room whose job types every room has. */
export const GLOBAL_ROOM = "@global"

/** A room id: `@global`, or 1 to 128 of `A–Z a–z 0–9 _ . ~ -`, starting with a letter or digit. */
export const ROOM_PATTERN = /^(?:@global|[A-Za-z0-9][A-Za-z0-9_.~-]{0,127})$/
/**
 * A job type's name: `<public|private>:<category>:<name>`; the category 1 to 64 of `a–z 0–9 _ -` starting with a
 * letter, the name 1 to 128 of `A–Z a–z 0–9 _ . -` starting with a letter or digit.
 */
export const JOB_TYPE_NAME_PATTERN = /^(public|private):([a-z][a-z0-9_-]{0,63}):([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/

export const RoomId = Schema.String.pipe(
  Schema.pattern(ROOM_PATTERN, {
    message: () => "a room id must be @global or 1 to 128 of A-Z a-z 0-9 _ . ~ - (starting with a letter or digit)"
  })
).annotations({ identifier: "RoomId", description: "@global, or 1 to 128 of A-Z a-z 0-9 _ . ~ -", examples: ["lab-1"] })

export const JobTypeName = Schema.String.pipe(
  Schema.pattern(JOB_TYPE_NAME_PATTERN, {
    message: () =>
      "a job type name must be <public|private>:<category>:<name>: category 1 to 64 of a-z 0-9 _ - (starting " +
      "with a letter), name 1 to 128 of A-Z a-z 0-9 _ . - (starting with a letter or digit)"
  })
).annotations({
  identifier: "JobTypeName",
  description: "<public|private>:<category>:<name>; public: every user of the room may use it, private: only its registrant",
  examples: ["public:modifiers:Rotate"]
})

/** A name's three parts. */
export const parseJobTypeName = (name: string) => {
  const m = JOB_TYPE_NAME_PATTERN.exec(name)
  return m === null ? undefined : { visibility: m[1] as "public" | "private", category: m[2]!, shortName: m[3]! }
}

/** A JSON Schema: a JSON object (draft 2020-12, checked by the service). */
export const JsonSchemaObject = JsonValue("a JSON Schema (draft 2020-12) object").pipe(
  Schema.filter((value) => typeof value === "object" && value !== null && !Array.isArray(value), {
    message: () => "must be a JSON Schema object",
    jsonSchema: { type: "object" }
  })
).annotations({ identifier: "JsonSchema" })

export const RoomPath = Schema.Struct({ roomId: RoomId })
export const JobTypePath = Schema.Struct({ roomId: RoomId, jobName: JobTypeName })
export const TaskPath = Schema.Struct({ taskId: JobIdFromString })
export const JobLibWorkerPath = Schema.Struct({ workerId: WorkerIdText })
export const UnregisterPath = Schema.Struct({ roomId: RoomId, jobName: JobTypeName, workerId: WorkerIdText })

/** A job type to register: its name, its payload schema, and the worker that serves it (default: the caller). */
export const RegisterBody = Schema.Struct({
  name: JobTypeName,
  schema: JsonSchemaObject,
  workerId: Schema.optional(WorkerIdText.annotations({
    description: "the worker that serves it: <sub> or <sub>:<name> of the caller's token (default <sub>)"
  })),
  maxAttempts: Schema.optional(MaxAttempts.annotations({ description: "attempts per task (default 1)" }))
}).annotations({
  identifier: "RegisterBody",
  examples: [{
    name: "public:modifiers:Rotate",
    schema: { type: "object", properties: { angle: { type: "number" } }, required: ["angle"] }
  }]
})

/** Paging of a room's job types. */
export const JobTypeListParams = Schema.Struct({
  limit: Schema.optional(IntParam(Schema.Int.pipe(Schema.between(1, 500)), 1, 500, "default 100")),
  offset: Schema.optional(IntParam(Schema.Int.pipe(Schema.between(0, 1_000_000)), 0, 1_000_000))
})

/** A task's options beside its payload (the body): priority and a delay. */
export const PushParams = Schema.Struct({
  priority: Schema.optional(IntParam(Priority, -(2 ** 31 - 1), 2 ** 31 - 1, "higher runs first")),
  delay: Schema.optional(Schema.compose(Schema.NumberFromString, seconds("delay"))).pipe(Schema.fromKey("delaySeconds"))
})

export const TaskClaimBody = Schema.Struct({
  workerId: WorkerIdText,
  rooms: Schema.optional(Schema.Array(RoomId).pipe(Schema.minItems(1), Schema.maxItems(100))).annotations({
    description: "only tasks pushed to these rooms (default: every room of the types served)"
  }),
  limit: Schema.optional(ClaimLimit),
  wait: Schema.optional(seconds("claimWait")).pipe(Schema.fromKey("waitSeconds")),
  heartbeatInterval: Schema.optional(seconds("heartbeat")).pipe(Schema.fromKey("heartbeatSeconds"))
}).annotations({
  identifier: "TaskClaimBody",
  examples: [{ workerId: "alice:laptop", rooms: ["lab-1"], wait: Duration.seconds(30) }]
})

/** What a task claim answers: its tasks (a task's `queue` is its room, its `name` its job type's). */
export class TaskClaimResult extends Schema.Class<TaskClaimResult>("TaskClaimResult")({
  tasks: Schema.Array(ClaimedJob)
}) {}

/** The status a task's holder sets; `cancelled` is accepted for `canceled`. */
export const TaskStatusUpdate = Schema.Literal("running", "completed", "failed", "canceled", "cancelled")

/** A task's progress, as its holder reports it. */
export const TaskProgress = Schema.Struct({
  percent: Percent,
  step: Schema.optional(StepText),
  message: Schema.optional(NoteText),
  data: Schema.optional(JsonValue("what the worker reports with it (at most 64 KiB)"))
})

/** A task update must change something: its status, or its progress. */
const statusOrProgress = (body: { readonly status?: unknown; readonly progress?: unknown }) =>
  body.status !== undefined || body.progress !== undefined || "give status or progress"
const errorWhenFailed = (body: { readonly status?: unknown; readonly error?: unknown }) =>
  body.status !== "failed" || body.error !== undefined || { path: ["error"], message: "is required when status is failed" }
/** The rules of a task update beside its fields' own (for the RPC payload, which adds the task id). */
export const taskUpdateRules = [statusOrProgress, errorWhenFailed] as const

export const taskUpdateFields = {
  workerId: WorkerIdText,
  status: Schema.optional(TaskStatusUpdate),
  result: Schema.optional(JsonValue("the task's result")),
  error: Schema.optional(Schema.Union(ErrorMessage, FailureBody)).annotations({
    description: "with failed: a message, or { code, message, retryable }"
  }),
  progress: Schema.optional(TaskProgress),
  artefacts: Schema.optional(ArtefactInputs),
  message: Schema.optional(NoteText)
}

export const TaskUpdateBody = Schema.Struct(taskUpdateFields).pipe(
  Schema.filter(statusOrProgress),
  Schema.filter(errorWhenFailed)
).annotations({
  identifier: "TaskUpdateBody",
  examples: [{ workerId: "alice:laptop", status: "completed" as const, result: { frames: 12 } }]
})

/** A registered job type. */
export class JobType extends Schema.Class<JobType>("JobType")({
  room: Schema.String,
  name: Schema.String,
  visibility: Schema.Literal("public", "private"),
  category: Schema.String,
  shortName: Schema.String,
  schema: Schema.Unknown,
  /** `sha256:` and the hex digest of the schema's canonical JSON (RFC 8785). */
  schemaDigest: Schema.String,
  maxAttempts: Schema.Int,
  /** How many registered workers serve it. */
  workers: Schema.Int,
  /** Whether the caller registered it. */
  mine: Schema.Boolean,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

/** What a registration answers: the type, and the worker linked to it. */
export class JobTypeRegistration extends Schema.Class<JobTypeRegistration>("JobTypeRegistration")({
  jobType: JobType,
  workerId: Schema.String,
  /** `created`, `revived` (it had been removed as an orphan) or `existing`. */
  outcome: Schema.Literal("created", "revived", "existing")
}) {}

export class JobTypeList extends Schema.Class<JobTypeList>("JobTypeList")({
  items: Schema.Array(JobType),
  total: Schema.Int,
  limit: Schema.Int,
  offset: Schema.Int
}) {}

/** The name is registered in this room with another schema. HTTP 409. */
export class SchemaConflict extends Schema.TaggedError<SchemaConflict>()(
  "SchemaConflict",
  {
    room: Schema.String,
    name: Schema.String,
    registeredDigest: Schema.String,
    requestedDigest: Schema.String,
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 409, description: "The job type is registered with another schema" })
) {}

/** The most live job types one user may have registered. */
export const MAX_JOB_TYPES_PER_USER = 1000

/** A registration that would give its user more than `MAX_JOB_TYPES_PER_USER` live job types. HTTP 409. */
export class JobTypeLimitReached extends Schema.TaggedError<JobTypeLimitReached>()(
  "JobTypeLimitReached",
  { limit: Schema.Int, message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The user has registered as many job types as one may" })
) {}

/** No such job type in the room or `@global`, or none the caller may use. HTTP 404. */
export class JobTypeNotFound extends Schema.TaggedError<JobTypeNotFound>()(
  "JobTypeNotFound",
  { room: Schema.String, name: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No such job type here (or it is another user's private one)" })
) {}

/** One way a task's payload breaks its type's schema: a JSON Pointer to the value, and what is wrong. */
export const PayloadIssue = Schema.Struct({ path: Schema.String, message: Schema.String })

/** The payload does not match the job type's schema. HTTP 422. */
export class PayloadInvalid extends Schema.TaggedError<PayloadInvalid>()(
  "PayloadInvalid",
  { name: Schema.String, errors: Schema.Array(PayloadIssue), message: Schema.String },
  HttpApiSchema.annotations({ status: 422, description: "The payload does not match the job type's schema" })
) {}
