import { DateTime, Duration, ParseResult, Schema } from "effect"
import { allStatuses, resolveStatus, statusAliases } from "./JobStatus.js"
import { JobId } from "./JobId.js"
import { WebhookEventType } from "./Webhook.js"
import { isStorableNumber, isStorableText, jsonValueTooDeep, MAX_JSON_DEPTH, textProblem, UUID_PATTERN } from "./Values.js"

// The request schemas of the HTTP API, the RPC group and (through `Jobs.enqueue`'s options) the services: every
// body, path and query parameter and header, with every bound it has (lengths, integers, ranges, patterns, list
// sizes, JSON depth, durations in seconds with their caps), so that /openapi.json and the derived clients show them
// and the decoder refuses bad input before any service sees it (HTTP: 400 HttpApiDecodeError with the issue's path;
// RPC: InvalidInput naming the field). Durations arrive as seconds and leave the decoder as `Duration`s.
//
// Three bounds depend on the configuration: the payload size (JOBWATCH_MAX_PAYLOAD_BYTES), the page size
// (JOBWATCH_MAX_PAGE_SIZE) and the batch size (JOBWATCH_MAX_BATCH_SIZE). The schemas carry their hard ceilings (what
// the configuration may be raised to) and the services check the configured value, naming the same field.

const DAY = 24 * 3600
const INT32 = 2 ** 31 - 1

/** The hard ceilings of the configurable bounds (`Config.ts` refuses settings above them). */
export const MAX_PAGE_SIZE_CEILING = 10_000
export const MAX_BATCH_SIZE_CEILING = 10_000
/** How many ids one wait or release lists. */
export const MAX_IDS = 1000

/** Text of 1 to `max` characters, not blank, storable by PostgreSQL (no NUL, no unpaired surrogate). */
export const Text = (max: number) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => "must not be empty" }),
    Schema.maxLength(max, { message: (issue) => `must have at most ${max} characters, got ${String(issue.actual).length}` }),
    Schema.filter((s) => s.trim() !== "", { message: () => "must not be blank", jsonSchema: {} }),
    Schema.filter(isStorableText, {
      message: (issue) => textProblem(String(issue.actual)) ?? "is not storable text",
      jsonSchema: {}
    })
  )

/** Any JSON value, nested at most 64 levels deep; its size is the configuration's (checked by the service). */
export const JsonValue = (description: string) =>
  Schema.Unknown.pipe(
    Schema.filter((value) => !jsonValueTooDeep(value, MAX_JSON_DEPTH), {
      message: () => `must not nest deeper than ${MAX_JSON_DEPTH} levels`,
      jsonSchema: {}
    })
  ).annotations({ description: `${description}: any JSON value, nested at most ${MAX_JSON_DEPTH} levels deep` })

/** A UUID in any case, decoded lowercased. */
export const UuidFromString = Schema.transform(
  Schema.String.pipe(Schema.pattern(UUID_PATTERN, { message: () => "must be a UUID" })).annotations({
    description: "a UUID",
    examples: ["01936b2e-8f4a-7c3d-9e5f-0a1b2c3d4e5f"]
  }),
  Schema.String,
  { strict: true, decode: (s) => s.toLowerCase(), encode: (s) => s }
)

/** A job id from outside: a UUID in any case, decoded to the lowercase `JobId`. */
export const JobIdFromString = Schema.compose(UuidFromString, JobId)

/** A worker's id: 1 to 200 characters. */
export const WorkerIdText = Text(200).annotations({ description: "the worker's id: 1 to 200 characters" })
/** Queue and job names. */
export const NameText = Text(200)
/** A progress report's step name. */
export const StepText = Text(200)
/** A note of a worker's on a job's event (a progress report's, or an update's). */
export const NoteText = Text(2000)


/** `min` to `max` seconds (finite), decoded to a `Duration` (to the millisecond). */
export const SecondsDuration = (min: number, max: number) =>
  Schema.transform(
    Schema.Number.pipe(Schema.finite(), Schema.between(min, max)),
    Schema.DurationFromSelf,
    {
      strict: true,
      decode: (seconds) => Duration.millis(Math.round(seconds * 1000)),
      encode: (duration) => Duration.toSeconds(duration)
    }
  )

/** Any `Duration.DurationInput` an embedder passes (`"5 seconds"`, a number of milliseconds, a `Duration`), finite. */
export const DurationInput = Schema.transformOrFail(
  Schema.Union(Schema.DurationFromSelf, Schema.Number, Schema.String, Schema.BigIntFromSelf),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) => {
      // Duration.decode reads a negative number of milliseconds as zero
      const negative = (typeof input === "number" && !(input >= 0)) || (typeof input === "bigint" && input < BigInt(0))
      const duration = negative ? undefined : Duration.decodeUnknown(input)
      return duration !== undefined && duration._tag === "Some" && Duration.isFinite(duration.value)
        ? ParseResult.succeed(duration.value)
        : ParseResult.fail(new ParseResult.Type(ast, input, "must be a finite duration of at least 0"))
    },
    encode: (duration) => ParseResult.succeed(duration)
  }
)

/** A `DurationInput` from `min` to `max` seconds (a service's option; the wire's twin is `SecondsDuration`). */
export const DurationWithin = (min: number, max: number, label: string) =>
  Schema.compose(
    DurationInput,
    Schema.DurationFromSelf.pipe(
      Schema.filter((d) => Duration.toMillis(d) >= Math.round(min * 1000) && Duration.toMillis(d) <= max * 1000, {
        message: () => `must be from ${min} seconds to ${label}`
      })
    )
  )

/** The caps of the durations, in seconds: the wire's (`SecondsDuration`) and the services' (`DurationWithin`). */
export const DurationCaps = {
  delay: { min: 0, max: 3653 * DAY, label: "10 years" },
  timeout: { min: 0.001, max: 365 * DAY, label: "365 days" },
  backoff: { min: 0, max: 7 * DAY, label: "7 days" },
  wait: { min: 0, max: DAY, label: "1 day" },
  claimWait: { min: 0, max: 600, label: "10 minutes" },
  heartbeat: { min: 0.1, max: 3600, label: "1 hour" }
} as const

const seconds = (cap: keyof typeof DurationCaps) => SecondsDuration(DurationCaps[cap].min, DurationCaps[cap].max)

/** Seconds to wait: decoded to a `Duration`, capped further by `JOBWATCH_MAX_WAIT` (default 60 s). */
export const WaitSeconds = seconds("wait").annotations({
  description: "seconds to wait, at most a day; the server caps it at JOBWATCH_MAX_WAIT (default 60)"
})

/** A version of a job: an integer of at least 0. */
export const Version = Schema.Int.pipe(Schema.between(0, INT32))
/** 1-based page numbers, and page sizes (at most `JOBWATCH_MAX_PAGE_SIZE`, checked by the service). */
export const PageNumber = Schema.Int.pipe(Schema.between(1, 1_000_000))
export const PageSize = Schema.Int.pipe(Schema.between(1, MAX_PAGE_SIZE_CEILING)).annotations({
  description: `the page size: at most JOBWATCH_MAX_PAGE_SIZE (default 100, never above ${MAX_PAGE_SIZE_CEILING})`
})

/** An integer query parameter from `min` to `max` (the text of one), shown as such in /openapi.json. */
const IntParam = (schema: Schema.Schema<number>, min: number, max: number, description?: string) =>
  Schema.compose(Schema.NumberFromString, schema).annotations({
    jsonSchema: { type: "integer", minimum: min, maximum: max, ...(description === undefined ? {} : { description }) }
  })
const PageParam = IntParam(PageNumber, 1, 1_000_000)
const LimitParam = IntParam(PageSize, 1, MAX_PAGE_SIZE_CEILING, `the page size: at most JOBWATCH_MAX_PAGE_SIZE (default 100, never above ${MAX_PAGE_SIZE_CEILING})`)

/** A progress percent: any finite number (clamped to 0–100 by the service), not a subnormal one. */
export const Percent = Schema.Number.pipe(
  Schema.finite(),
  Schema.filter(isStorableNumber, {
    message: () => "a percent must be 0 or at least 2.2250738585072014e-308 in magnitude",
    jsonSchema: {}
  })
).annotations({ description: "0 to 100 (values outside are clamped); never below the job's current percent" })

export const Priority = Schema.Int.pipe(Schema.between(-INT32, INT32)).annotations({ description: "higher runs first" })
export const MaxAttempts = Schema.Int.pipe(Schema.between(1, 1000))
const RunAtText = Text(64).pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T/, { message: () => "must be a date-time (ISO 8601)" })
).annotations({ description: "an ISO-8601 date-time, 1970 to 9999" })
/** A point in time from 1970 to 9999 (what PostgreSQL stores and every client parses). */
const Instant = Schema.ValidDateFromSelf.pipe(
  Schema.filter((date) => date.getTime() >= 0 && date.getUTCFullYear() <= 9999, {
    message: () => "must be between 1970 and 9999"
  })
)
/** `runAt` on the wire: an ISO-8601 text, decoded to a `Date`. */
export const RunAt = Schema.compose(
  Schema.transform(RunAtText, Schema.DateFromSelf, {
    strict: true,
    decode: (s) => new Date(s),
    encode: (d) => d.toISOString()
  }),
  Instant
)
/** A Standard Webhooks secret: `whsec_` and base64 (of 24 to 64 bytes, checked by the service). */
export const WebhookSecret = Text(200).pipe(
  Schema.pattern(/^whsec_[A-Za-z0-9+/]+={0,2}$/, {
    message: () => "must be whsec_ followed by base64 (a Standard Webhooks secret)"
  })
)
/** A webhook target. */
export const UrlText = Text(2000).annotations({ description: "an http(s) URL" })

/** Both `runAt` and a delay: refused naming `field`, as the caller spells the delay. */
const oneStart = (field: string) => (job: { readonly runAt?: unknown; readonly delay?: unknown }) =>
  job.runAt !== undefined && job.delay !== undefined ? { path: [field], message: "give runAt or delay, not both" } : true
const maxDelayAtLeastDelay = (field: string) =>
(backoff: { readonly delay?: Duration.Duration | undefined; readonly maxDelay?: Duration.Duration | undefined }) =>
  backoff.delay !== undefined && backoff.maxDelay !== undefined && Duration.lessThan(backoff.maxDelay, backoff.delay)
    ? { path: [field], message: "must not be shorter than the delay" }
    : true
const secretNeedsUrl = (job: { readonly webhookUrl?: unknown; readonly webhookSecret?: unknown }) =>
  job.webhookSecret !== undefined && job.webhookUrl === undefined
    ? { path: ["webhookSecret"], message: "needs webhookUrl: it signs the job's own callback" }
    : true

export const Multiplier = Schema.Number.pipe(Schema.finite(), Schema.between(1, 100))

/** A job's retry backoff on the wire: `min(maxDelay, delay × multiplier^(attempt − 1))`, jittered. */
export const Backoff = Schema.Struct({
  delay: Schema.optional(seconds("backoff")).pipe(Schema.fromKey("delaySeconds")),
  maxDelay: Schema.optional(seconds("backoff")).pipe(Schema.fromKey("maxDelaySeconds")),
  multiplier: Schema.optional(Multiplier)
}).pipe(Schema.filter(maxDelayAtLeastDelay("maxDelaySeconds"))).annotations({
  identifier: "Backoff",
  description: "retry backoff: delaySeconds (default 1) times multiplier (default 2) per attempt, at most maxDelaySeconds"
})

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
  }))
}

/** A job to enqueue. Give `runAt` or `delaySeconds`, not both. */
export const EnqueueBody = Schema.Struct(enqueueFields).annotations({
  // on the struct: a filter's description and examples do not reach the JSON Schema
  description: "A job to enqueue: runAt or delaySeconds, not both",
  examples: [
    { name: "send-email", queue: "emails", payload: { to: "ada@example.com" }, maxAttempts: 3 },
    { name: "report", payload: { month: "2026-11" }, priority: 10, delay: Duration.seconds(60) }
  ]
}).pipe(Schema.filter(oneStart("delaySeconds")), Schema.filter(secretNeedsUrl)).annotations({ identifier: "EnqueueBody" })
export type EnqueueBody = typeof EnqueueBody.Type

/** A batch of jobs (at most JOBWATCH_MAX_BATCH_SIZE, default 1,000, checked by the service). */
export const EnqueueBatchBody = Schema.Struct({
  jobs: Schema.Array(EnqueueBody).pipe(Schema.minItems(1), Schema.maxItems(MAX_BATCH_SIZE_CEILING)).annotations({
    description: `1 to JOBWATCH_MAX_BATCH_SIZE jobs (default 1,000, never above ${MAX_BATCH_SIZE_CEILING})`
  })
}).annotations({ identifier: "EnqueueBatchBody" })

/** `runAt` from code: a `Date`, a `DateTime` or an ISO-8601 text. */
const RunAtInput = Schema.transform(
  Schema.Union(Schema.DateFromSelf, Schema.DateTimeUtcFromSelf, Schema.DateTimeZonedFromSelf, RunAtText),
  Schema.DateFromSelf,
  {
    strict: true,
    decode: (input) => (input instanceof Date ? input : typeof input === "string" ? new Date(input) : DateTime.toDateUtc(input)),
    encode: (date) => date
  }
).pipe(Schema.compose(Instant))

/** A service's duration option (a `DurationInput`) within the cap the wire's seconds have. */
export const during = (cap: keyof typeof DurationCaps) =>
  DurationWithin(DurationCaps[cap].min, DurationCaps[cap].max, DurationCaps[cap].label)
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
}).pipe(Schema.filter(oneStart("delay")), Schema.filter(secretNeedsUrl))
export type EnqueueOptions = typeof EnqueueOptions.Encoded

/** Job ids, 1 to 1,000. */
export const JobIds = Schema.Array(JobIdFromString).pipe(Schema.minItems(1), Schema.maxItems(MAX_IDS))

export const WaitBody = Schema.Struct({
  ids: JobIds,
  mode: Schema.optionalWith(Schema.Literal("all", "any"), { default: () => "all" as const }),
  timeout: Schema.optional(WaitSeconds).pipe(Schema.fromKey("timeoutSeconds"))
}).annotations({
  identifier: "WaitBody",
  description: "Jobs to wait for: all of them, or the first to end",
  examples: [{ ids: [JobId.make("01936b2e-8f4a-7c3d-9e5f-0a1b2c3d4e5f")], mode: "all" as const, timeout: Duration.seconds(30) }]
})

export const IdPath = Schema.Struct({ id: JobIdFromString })

/** `Prefer: wait=N` (RFC 7240): answer when the job is terminal (or changed after `afterVersion`), or N s passed. */
export const WaitHeaders = Schema.Struct({
  prefer: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))).annotations({
    description: "wait=N: hold the answer up to N seconds until the job is terminal, or changed after afterVersion"
  })
})
export const AfterVersion = Schema.Struct({
  afterVersion: Schema.optional(IntParam(Version, 0, INT32, "answer (or stream) only what comes after this version"))
})

/** Statuses or their aliases, comma-separated, decoded to the canonical statuses they name. */
export const StatusFilter = Schema.transformOrFail(
  Text(1000).annotations({
    description: `statuses or aliases, comma-separated: ${allStatuses.join(", ")}; ${Object.keys(statusAliases).join(", ")}`,
    examples: ["in_progress", "pending,scheduled"]
  }),
  Schema.Array(Schema.Literal(...allStatuses)),
  {
    strict: true,
    decode: (text, _, ast) => {
      const statuses: Array<typeof allStatuses[number]> = []
      for (const term of text.split(",").map((t) => t.trim()).filter((t) => t !== "")) {
        const resolved = resolveStatus(term)
        if (resolved === undefined) {
          return ParseResult.fail(new ParseResult.Type(ast, text, `unknown status ${JSON.stringify(term.slice(0, 60))}; expected one of ${allStatuses.join(", ")} or an alias (${Object.keys(statusAliases).join(", ")})`))
        }
        for (const status of resolved) if (!statuses.includes(status)) statuses.push(status)
      }
      return ParseResult.succeed(statuses)
    },
    encode: (statuses) => ParseResult.succeed(statuses.join(","))
  }
)

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

/** Queue (or job) names a worker serves: 1 to 100. */
export const Names = Schema.Array(NameText).pipe(Schema.minItems(1), Schema.maxItems(100))
/** How many jobs one claim takes. */
export const ClaimLimit = Schema.Int.pipe(Schema.between(1, 1000))

export const ClaimBody = Schema.Struct({
  queues: Schema.optional(Names).annotations({ description: "the queues served; default [\"default\"]" }),
  names: Schema.optional(Names).annotations({ description: "only jobs of these names" }),
  limit: Schema.optional(ClaimLimit),
  wait: Schema.optional(seconds("claimWait")).pipe(Schema.fromKey("waitSeconds")),
  start: Schema.optional(Schema.Boolean).annotations({ description: "start the jobs as they are claimed (running at once)" }),
  heartbeatInterval: Schema.optional(seconds("heartbeat")).pipe(Schema.fromKey("heartbeatSeconds"))
}).annotations({
  identifier: "ClaimBody",
  description: "What a worker claims; heartbeatSeconds: how often it heartbeats (its leases last 1.5 × this)",
  examples: [{ queues: ["emails"], limit: 10, wait: Duration.seconds(30) }]
})

/** A failure's machine-readable code, and what went wrong. */
export const ErrorCode = Text(200)
export const ErrorMessage = Text(10_000)

const FailureBody = Schema.Struct({
  code: Schema.optional(ErrorCode),
  message: ErrorMessage,
  retryable: Schema.optional(Schema.Boolean)
})

const errorWhenFailed = (body: { readonly status: string; readonly error?: unknown }) =>
  body.status === "failed" && body.error === undefined ? { path: ["error"], message: "is required when status is failed" } : true

const updateFields = {
  workerId: WorkerIdText,
  status: Schema.Literal("running", "completed", "failed", "canceled"),
  result: Schema.optional(JsonValue("the job's result (at most JOBWATCH_MAX_PAYLOAD_BYTES)")),
  error: Schema.optional(FailureBody),
  message: Schema.optional(NoteText.annotations({ description: "a note for the job's event" }))
}

export const UpdateBody = Schema.Struct(updateFields).annotations({
  description: "A worker starts or ends a job it holds; failed needs error",
  examples: [{ workerId: "host-1:w-1", status: "completed" as const, result: { sent: true } }]
}).pipe(Schema.filter(errorWhenFailed)).annotations({ identifier: "UpdateBody" })

const progressFields = {
  workerId: WorkerIdText,
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

export const WorkerPath = Schema.Struct({ workerId: WorkerIdText })

/** Which of its jobs a worker lets go (all when `ids` is absent): back to the queue, their attempt not used up. */
export const ReleaseBody = Schema.Struct({ ids: Schema.optional(Schema.Array(JobIdFromString).pipe(Schema.maxItems(MAX_IDS))) })
  .annotations({ identifier: "ReleaseBody" })

export const LastEventId = Schema.Struct({
  "last-event-id": Schema.optional(Text(200)).annotations({ description: "resume after this event's id" })
})

const webhookFields = {
  url: UrlText,
  eventTypes: Schema.Array(WebhookEventType).pipe(Schema.minItems(1), Schema.maxItems(5)).annotations({
    description: "1 to 5 of progress, completed, failed, canceled or all"
  }),
  description: Schema.optional(Schema.NullOr(Text(500))),
  active: Schema.optional(Schema.Boolean)
}

export const WebhookBody = Schema.Struct(webhookFields).annotations({
  identifier: "WebhookBody",
  description: "A webhook endpoint: where to POST which events of your jobs",
  examples: [{ url: "https://example.com/hooks/jobs", eventTypes: ["completed", "failed"] as const }]
})

/** The fields of an endpoint to change: any of `WebhookBody`'s. */
export const WebhookPatch = Schema.Struct({
  url: Schema.optional(webhookFields.url),
  eventTypes: Schema.optional(webhookFields.eventTypes),
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
