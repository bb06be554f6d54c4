import { Duration, Schema } from "effect"
import { JobId } from "./JobId.js"
import { ArtefactInputs, JobTracking } from "./Job.js"
import { Traceparent, Tracestate } from "./TraceContext.js"
import { WebhookEventType, WebhookFormat } from "./Webhook.js"
import {
  ClaimLimit,
  during,
  ErrorCode,
  ErrorMessage,
  IntParam,
  JobIdFromString,
  JobIds,
  JsonValue,
  LimitParam,
  MAX_BATCH_SIZE_CEILING,
  MAX_IDS,
  MaxAttempts,
  Multiplier,
  Names,
  NameText,
  NoteText,
  PageNumber,
  PageParam,
  PageSize,
  Percent,
  Priority,
  PurgeLimit,
  RunAt,
  RunAtInput,
  seconds,
  StatusFilter,
  StepText,
  Text,
  UrlText,
  UuidFromString,
  Version,
  WaitSeconds,
  WebhookSecret,
  WorkerIdText
} from "./Fields.js"

export * from "./Fields.js"

// The request schemas of the HTTP API, the RPC group and (through `Jobs.enqueue`'s options) the services: every
// body, path and query parameter and header, with every bound it has (lengths, integers, ranges, patterns, list
// sizes, JSON depth, durations in seconds with their caps), so that /openapi.json and the derived clients show them
// and the decoder refuses bad input before any service sees it (HTTP: 400 HttpApiDecodeError with the path;
// RPC: InvalidInput naming the field). Durations arrive as seconds and leave the decoder as `Duration`s.
//
// Their fields, each with its bounds, are in `Fields.ts` (re-exported here).

/** Both `runAt` and a delay: refused naming `field`, as the caller spells the delay. */
const oneStart = (field: string) => (job: { readonly runAt?: unknown; readonly delay?: unknown }) =>
  job.runAt !== undefined && job.delay !== undefined
    ? { path: [field], message: "give runAt or delay, not both" }
    : true
const maxDelayAtLeastDelay = (field: string) =>
(backoff: { readonly delay?: Duration.Duration | undefined; readonly maxDelay?: Duration.Duration | undefined }) =>
  backoff.delay !== undefined && backoff.maxDelay !== undefined && Duration.lessThan(backoff.maxDelay, backoff.delay)
    ? { path: [field], message: "must not be shorter than the delay" }
    : true
const secretNeedsUrl = (job: { readonly webhookUrl?: unknown; readonly webhookSecret?: unknown }) =>
  job.webhookSecret !== undefined && job.webhookUrl === undefined
    ? { path: ["webhookSecret"], message: "needs webhookUrl: it signs the job's own callback" }
    : true
const tracestateNeedsTraceparent = (job: { readonly traceparent?: unknown; readonly tracestate?: unknown }) =>
  job.tracestate !== undefined && job.traceparent === undefined
    ? { path: ["tracestate"], message: "needs traceparent: it goes with it" }
    : true

/** A job's retry backoff on the wire: `min(maxDelay, delay × multiplier^(attempt − 1))`, jittered. */
export const Backoff = Schema.Struct({
  delay: Schema.optional(seconds("backoff")).pipe(Schema.fromKey("delaySeconds")),
  maxDelay: Schema.optional(seconds("backoff")).pipe(Schema.fromKey("maxDelaySeconds")),
  multiplier: Schema.optional(Multiplier)
}).annotations({
  description:
    "retry backoff: delaySeconds (default 1) times multiplier (default 2) per attempt, at most maxDelaySeconds"
}).pipe(Schema.filter(maxDelayAtLeastDelay("maxDelaySeconds"))).annotations({ identifier: "Backoff" })

const enqueueFields = {
  name: NameText.annotations({ description: "what the job does" }),
  queue: Schema.optional(NameText.annotations({ description: "default: default" })),
  payload: Schema.optional(JsonValue("the job's input (at most JOBWATCH_MAX_PAYLOAD_BYTES, default 1 MiB)")),
  priority: Schema.optional(Priority),
  runAt: Schema.optional(RunAt),
  delay: Schema.optional(seconds("delay")).pipe(Schema.fromKey("delaySeconds")),
  maxAttempts: Schema.optional(MaxAttempts),
  timeout: Schema.optional(seconds("timeout")).pipe(Schema.fromKey("timeoutSeconds")),
  idempotencyKey: Schema.optional(NameText),
  backoff: Schema.optional(Backoff),
  webhookUrl: Schema.optional(UrlText.annotations({
    description: "the job's own callback: receives its job.completed or job.failed webhook"
  })),
  webhookSecret: Schema.optional(WebhookSecret.annotations({
    description: "signs that callback (Standard Webhooks): whsec_ and the base64 of 24 to 64 bytes; never answered back"
  })),
  tracking: Schema.optional(JobTracking.annotations({
    description: "queue (default): jobwatch's workers claim it; external: a system outside jobwatch runs it and " +
      "reports on it by id (start, progress, complete, fail), and no worker claims it"
  })),
  traceparent: Schema.optional(Traceparent.annotations({
    description: "the W3C trace context the job is created in (default: the request's traceparent header): the " +
      "span of the worker that runs it links to it"
  })),
  tracestate: Schema.optional(Tracestate)
}

/** A job to enqueue. Give `runAt` or `delaySeconds`, not both. */
export const EnqueueBody = Schema.Struct(enqueueFields).annotations({
  // on the struct: a filter's description and examples do not reach the JSON Schema
  description: "A job to enqueue: runAt or delaySeconds, not both",
  examples: [
    { name: "send-email", queue: "emails", payload: { to: "ada@example.com" }, maxAttempts: 3 },
    { name: "report", payload: { month: "2026-11" }, priority: 10, delay: Duration.seconds(60) }
  ]
}).pipe(
  Schema.filter(oneStart("delaySeconds")),
  Schema.filter(secretNeedsUrl),
  Schema.filter(tracestateNeedsTraceparent)
).annotations({ identifier: "EnqueueBody" })
export type EnqueueBody = typeof EnqueueBody.Type

/** A batch of jobs (at most JOBWATCH_MAX_BATCH_SIZE, default 1,000, checked by the service). */
export const EnqueueBatchBody = Schema.Struct({
  jobs: Schema.Array(EnqueueBody).pipe(Schema.minItems(1), Schema.maxItems(MAX_BATCH_SIZE_CEILING)).annotations({
    description: `1 to JOBWATCH_MAX_BATCH_SIZE jobs (default 1,000, never above ${MAX_BATCH_SIZE_CEILING})`
  })
}).annotations({ identifier: "EnqueueBatchBody" })

export const EnqueueOptions = Schema.Struct({
  ...enqueueFields,
  runAt: Schema.optional(RunAtInput),
  delay: Schema.optional(during("delay")),
  timeout: Schema.optional(during("timeout")),
  owner: Schema.optional(NameText),
  backoff: Schema.optional(Schema.Struct({
    delay: Schema.optional(during("backoff")),
    maxDelay: Schema.optional(during("backoff")),
    multiplier: Schema.optional(Multiplier)
  }).pipe(Schema.filter(maxDelayAtLeastDelay("maxDelay"))))
}).pipe(Schema.filter(oneStart("delay")), Schema.filter(secretNeedsUrl), Schema.filter(tracestateNeedsTraceparent))
export type EnqueueOptions = typeof EnqueueOptions.Encoded

export const WaitBody = Schema.Struct({
  ids: JobIds,
  mode: Schema.optionalWith(Schema.Literal("all", "any"), { default: () => "all" as const }),
  timeout: Schema.optional(WaitSeconds).pipe(Schema.fromKey("timeoutSeconds"))
}).annotations({
  identifier: "WaitBody",
  description: "Jobs to wait for: all of them, or the first to end",
  examples: [
    { ids: [JobId.make("01936b2e-8f4a-7c3d-9e5f-0a1b2c3d4e5f")], mode: "all" as const, timeout: Duration.seconds(30) }
  ]
})

export const IdPath = Schema.Struct({ id: JobIdFromString })

/** `Prefer: wait=N` (RFC 7240): answer when the job is terminal (or changed after `afterVersion`), or N s passed. */
export const WaitHeaders = Schema.Struct({
  prefer: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))).annotations({
    description: "wait=N: hold the answer up to N seconds until the job is terminal, or changed after afterVersion"
  })
})
export const AfterVersion = Schema.Struct({
  afterVersion: Schema.optional(
    IntParam(Version, 0, 2 ** 31 - 1, "answer (or stream) only what comes after this version")
  )
})

const Cursor = Text(200)
const filterFields = {
  status: Schema.optional(StatusFilter),
  queue: Schema.optional(NameText),
  name: Schema.optional(NameText)
}

export const ListParams = Schema.Struct({
  ...filterFields,
  page: Schema.optional(PageParam),
  limit: Schema.optional(LimitParam),
  cursor: Schema.optional(Cursor).annotations({ description: "keyset paging: nextCursor of the previous page" })
})

/** `JobList`'s payload over RPC: `ListParams` with numbers for numbers. */
export const ListOptions = Schema.Struct({
  ...filterFields,
  page: Schema.optional(PageNumber),
  limit: Schema.optional(PageSize),
  cursor: Schema.optional(Cursor)
})

export const ClaimBody = Schema.Struct({
  queues: Schema.optional(Names).annotations({ description: "the queues served; default [\"default\"]" }),
  names: Schema.optional(Names).annotations({ description: "only jobs of these names" }),
  limit: Schema.optional(ClaimLimit),
  wait: Schema.optional(seconds("claimWait")).pipe(Schema.fromKey("waitSeconds")),
  start: Schema.optional(Schema.Boolean).annotations({
    description: "start the jobs as they are claimed (running at once)"
  }),
  heartbeatInterval: Schema.optional(seconds("heartbeat")).pipe(Schema.fromKey("heartbeatSeconds"))
}).annotations({
  identifier: "ClaimBody",
  description: "What a worker claims; heartbeatSeconds: how often it heartbeats (its leases last 1.5 × this)",
  examples: [{ queues: ["emails"], limit: 10, wait: Duration.seconds(30) }]
})

export const FailureBody = Schema.Struct({
  code: Schema.optional(ErrorCode),
  message: ErrorMessage,
  retryable: Schema.optional(Schema.Boolean)
})

const errorWhenFailed = (body: { readonly status: string; readonly error?: unknown }) =>
  body.status === "failed" && body.error === undefined
    ? { path: ["error"], message: "is required when status is failed" }
    : true

/** Who reports: a held job's worker; left out only on an external job (`tracking: "external"`), reported by id. */
const ReporterId = Schema.optional(WorkerIdText.annotations({
  description: "the worker's id (required but on an external job, which any worker token reports on by id)"
}))

const updateFields = {
  workerId: ReporterId,
  status: Schema.Literal("running", "completed", "failed", "canceled"),
  result: Schema.optional(JsonValue("the job's result (at most JOBWATCH_MAX_PAYLOAD_BYTES)")),
  error: Schema.optional(FailureBody),
  progress: Schema.optional(Percent.annotations({ description: "with failed: how far it got (written first)" })),
  artefacts: Schema.optional(ArtefactInputs.annotations({
    description: "attached in the same transaction as the change (1 to 100; one of a name the job has replaces it)"
  })),
  message: Schema.optional(NoteText.annotations({ description: "a note for the job's event" }))
}

export const UpdateBody = Schema.Struct(updateFields).annotations({
  description: "A worker starts or ends a job it holds; failed needs error",
  examples: [{ workerId: "host-1:w-1", status: "completed" as const, result: { sent: true } }]
}).pipe(Schema.filter(errorWhenFailed)).annotations({ identifier: "UpdateBody" })

const progressFields = {
  workerId: ReporterId,
  percent: Percent,
  step: Schema.optional(StepText),
  message: Schema.optional(NoteText),
  data: Schema.optional(JsonValue("what the worker reports with it (at most 64 KiB)")),
  force: Schema.optional(Schema.Boolean)
}

export const ProgressBody = Schema.Struct(progressFields).annotations({
  identifier: "ProgressBody",
  description: "A worker's progress report (throttled unless force)",
  examples: [{ workerId: "host-1:w-1", percent: 50, step: "render" }]
})

/** Artefacts a worker attaches to a job that runs. */
export const AttachBody = Schema.Struct({ workerId: ReporterId, artefacts: ArtefactInputs }).annotations({
  identifier: "AttachBody",
  description: "Artefacts to attach to a job that runs (one of a name the job has replaces it)",
  examples: [{
    workerId: "host-1:w-1",
    artefacts: [{ name: "report.pdf", url: "https://files.example.com/r/1.pdf", contentType: "application/pdf", size: 48213 }]
  }]
})

export const WorkerPath = Schema.Struct({ workerId: WorkerIdText })

/** Which of its jobs a worker lets go (all when `ids` is absent): back to the queue, their attempt not used up. */
export const ReleaseBody = Schema.Struct({
  ids: Schema.optional(Schema.Array(JobIdFromString).pipe(Schema.maxItems(MAX_IDS)))
})
  .annotations({ identifier: "ReleaseBody" })

export const LastEventId = Schema.Struct({
  "last-event-id": Schema.optional(Text(200)).annotations({ description: "resume after this event's id" })
})

const webhookFields = {
  url: UrlText,
  eventTypes: Schema.Array(WebhookEventType).pipe(Schema.minItems(1), Schema.maxItems(5)).annotations({
    description: "1 to 5 of progress, completed, failed, canceled or all"
  }),
  eventType: Schema.optional(WebhookEventType).annotations({
    description: "one event type: an alias of eventTypes: [eventType] (with both, both count)"
  }),
  format: Schema.optional(WebhookFormat).annotations({
    description: "standard (the default: Standard Webhooks, data = the event envelope) or simple (a flat body: " +
      "id, jobname, userId, progress | result | error, eventType); both signed the same way"
  }),
  description: Schema.optional(Schema.NullOr(Text(500))),
  active: Schema.optional(Schema.Boolean)
}

/** The event types an endpoint body names: its `eventTypes` and its `eventType` alias, each once. */
export const eventTypesOf = (body: {
  readonly eventTypes?: ReadonlyArray<WebhookEventType> | undefined
  readonly eventType?: WebhookEventType | undefined
}): ReadonlyArray<WebhookEventType> | undefined =>
  body.eventTypes === undefined && body.eventType === undefined
    ? undefined
    : [...new Set([...(body.eventTypes ?? []), ...(body.eventType === undefined ? [] : [body.eventType])])]

export const WebhookBody = Schema.Struct({ ...webhookFields, eventTypes: Schema.optional(webhookFields.eventTypes) }).pipe(
  Schema.filter((body) => eventTypesOf(body) !== undefined || "give eventTypes (or eventType)")
).annotations({
  identifier: "WebhookBody",
  description: "A webhook endpoint: where to POST which events of your jobs",
  examples: [{ url: "https://example.com/hooks/jobs", eventTypes: ["completed", "failed"] as const }]
})

/** The fields of an endpoint to change: any of `WebhookBody`'s. */
export const WebhookPatch = Schema.Struct({
  url: Schema.optional(webhookFields.url),
  eventTypes: Schema.optional(webhookFields.eventTypes),
  eventType: webhookFields.eventType,
  format: webhookFields.format,
  description: webhookFields.description,
  active: webhookFields.active
}).annotations({ identifier: "WebhookPatch", examples: [{ active: false }] })

export const WebhookPath = Schema.Struct({ id: UuidFromString })

/** The filter of a user's event stream. */
export const UserEventsParams = Schema.Struct(filterFields)

/** A page of an endpoint's deliveries. */
export const DeliveriesParams = Schema.Struct({
  page: Schema.optional(PageParam),
  limit: Schema.optional(LimitParam)
})

/** An admin's purge of finished jobs by filter (`POST /v1/admin/jobs/purge`); every field narrows. */
export const PurgeBody = Schema.Struct({
  status: Schema.optional(StatusFilter).annotations({
    description: "finished statuses or their aliases, comma-separated (default: completed, failed, canceled, deleted)"
  }),
  queue: Schema.optional(NameText),
  owner: Schema.optional(NameText),
  finishedBefore: Schema.optional(RunAt).annotations({ description: "ISO-8601 time: only jobs finished before it" }),
  limit: Schema.optional(PurgeLimit).annotations({ description: "the most jobs this call purges (default 1,000)" })
}).annotations({ identifier: "PurgeBody" })
export type PurgeBody = typeof PurgeBody.Type

// the RPC group's payloads, from the same fields
export const RpcPayloads = {
  id: { id: JobIdFromString },
  ids: { ids: JobIds },
  wait: { id: JobIdFromString, wait: Schema.optional(WaitSeconds), afterVersion: Schema.optional(Version) },
  filter: filterFields,
  cursor: Schema.optional(Cursor),
  update: updateFields,
  progress: progressFields,
  errorWhenFailed
} as const
