import { Schema } from "effect"

// The request schemas of the HTTP API (`Api.ts`) and the RPC group (`Rpcs.ts`): bodies, paths, headers, parameters.
// The schemas hold every bound that is fixed (lengths, integers, ranges, list sizes), so that /openapi.json shows
// them and the decoder refuses the absurd before any service sees it (400 HttpApiDecodeError with the path;
// over RPC, InvalidInput naming the field). The services check what depends on the configuration or on other fields
// (page sizes, payload bytes, runAt against delaySeconds, UUIDs, blank and non-Unicode text), naming the field too.

/** A string of at most `max` characters (the services refuse blank ones, NUL and unpaired surrogates). */
export const Text = (max: number) => Schema.String.pipe(Schema.maxLength(max))
/** Seconds from `min` to `max` (finite). */
export const Seconds = (min: number, max: number) => Schema.Number.pipe(Schema.finite(), Schema.between(min, max))
/** Seconds of at least 0 that the service caps (waits: by `JOBWATCH_MAX_WAIT`). */
export const WaitSeconds = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())
const DAY = 24 * 3600
const INT32 = 2 ** 31 - 1
/** Any JSON value; its size is limited by the configuration and its depth to 64 levels of arrays and objects. */
export const JsonValue = (description: string) =>
  Schema.Unknown.annotations({ description: `${description}: any JSON value, nested at most 64 levels deep` })
/** A version of a job: an integer of at least 0. */
export const Version = Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER))
/** 1-based page numbers, and page sizes (at most `JOBWATCH_MAX_PAGE_SIZE`, checked by the service). */
export const PageNumber = Schema.Int.pipe(Schema.between(1, 1_000_000))
export const PageSize = Schema.Int.pipe(Schema.between(1, 1_000_000))
/** A job, event or endpoint id: a UUID (checked by the service, which names the field). */
export const IdText = Text(100)
/** A worker's id: 1 to 200 characters. */
export const WorkerIdText = Text(200)
/** Queue and job names. */
export const NameText = Text(200)

// PostgreSQL's double precision refuses subnormal numbers ("value out of range: underflow")
const MIN_NORMAL = 2.2250738585072014e-308

/** Whether `n` is a number PostgreSQL's double precision can store: 0, or a normal (not subnormal) finite number. */
export const isStorableNumber = (n: number): boolean => n === 0 || (Number.isFinite(n) && Math.abs(n) >= MIN_NORMAL)

/** A progress percent: any finite number (clamped to 0–100 by the service), not a subnormal one. */
export const Percent = Schema.Number.pipe(
  Schema.finite(),
  Schema.filter(isStorableNumber, {
    message: () => "a percent must be 0 or at least 2.2250738585072014e-308 in magnitude",
    jsonSchema: {}
  })
).annotations({ description: "0 to 100 (values outside are clamped); never below the job's current percent" })

export const Backoff = Schema.Struct({
  delaySeconds: Schema.optional(Seconds(0, 7 * DAY)),
  maxDelaySeconds: Schema.optional(Seconds(0, 7 * DAY)),
  multiplier: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.between(1, 100)))
})

/** A job to enqueue. Give `runAt` or `delaySeconds`, not both. */
export const EnqueueBody = Schema.Struct({
  name: NameText,
  queue: Schema.optional(NameText),
  payload: Schema.optional(JsonValue("the job's input")),
  priority: Schema.optional(Schema.Int.pipe(Schema.between(-INT32, INT32))),
  runAt: Schema.optional(Text(64)).annotations({ description: "ISO-8601 time" }),
  delaySeconds: Schema.optional(Seconds(0, 3653 * DAY)),
  maxAttempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000))),
  timeoutSeconds: Schema.optional(Seconds(0.001, 365 * DAY)),
  idempotencyKey: Schema.optional(NameText),
  backoff: Schema.optional(Backoff),
  webhookUrl: Schema.optional(Text(2000)).annotations({
    description: "the job's own callback: receives its job.completed or job.failed webhook"
  }),
  webhookSecret: Schema.optional(Text(200)).annotations({
    description: "signs that callback (Standard Webhooks): whsec_ and the base64 of 24 to 64 bytes; never answered back"
  })
}).annotations({ identifier: "EnqueueBody" })
export type EnqueueBody = typeof EnqueueBody.Type

export const WaitBody = Schema.Struct({
  ids: Schema.Array(IdText).pipe(Schema.maxItems(1000)),
  mode: Schema.optionalWith(Schema.Literal("all", "any"), { default: () => "all" as const }),
  timeoutSeconds: Schema.optional(WaitSeconds)
}).annotations({ identifier: "WaitBody" })

export const IdPath = Schema.Struct({ id: IdText })

/** `Prefer: wait=N` (RFC 7240): answer when the job is terminal (or changed after `afterVersion`), or N s passed. */
export const WaitHeaders = Schema.Struct({
  prefer: Schema.optional(Schema.String).annotations({
    description: "wait=N: hold the answer up to N seconds until the job is terminal, or changed after afterVersion"
  })
})
export const AfterVersion = Schema.Struct({ afterVersion: Schema.optional(Schema.compose(Schema.NumberFromString, Version)) })

/** The statuses (or aliases) of a filter, comma-separated. */
export const StatusFilter = Text(1000).annotations({ description: "statuses or aliases, comma-separated" })

export const ListParams = Schema.Struct({
  status: Schema.optional(StatusFilter),
  queue: Schema.optional(NameText),
  name: Schema.optional(NameText),
  page: Schema.optional(Schema.compose(Schema.NumberFromString, PageNumber)),
  limit: Schema.optional(Schema.compose(Schema.NumberFromString, PageSize)),
  cursor: Schema.optional(Text(200)).annotations({ description: "keyset paging: nextCursor of the previous page" })
})

export const ClaimBody = Schema.Struct({
  queues: Schema.optional(Schema.Array(NameText).pipe(Schema.maxItems(100))),
  names: Schema.optional(Schema.Array(NameText).pipe(Schema.maxItems(100))),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000))),
  waitSeconds: Schema.optional(WaitSeconds),
  start: Schema.optional(Schema.Boolean).annotations({ description: "start the jobs as they are claimed (running at once)" }),
  heartbeatSeconds: Schema.optional(Seconds(0.1, 3600)).annotations({
    description: "how often this worker heartbeats (its leases last 1.5 × this); default the service's"
  })
}).annotations({ identifier: "ClaimBody" })

export const UpdateBody = Schema.Struct({
  workerId: WorkerIdText,
  status: Schema.Literal("running", "completed", "failed", "canceled"),
  result: Schema.optional(JsonValue("the job's result")),
  error: Schema.optional(Schema.Struct({
    code: Schema.optional(Text(200)),
    message: Text(10_000),
    retryable: Schema.optional(Schema.Boolean)
  })),
  message: Schema.optional(Text(2000))
}).annotations({ identifier: "UpdateBody" })

export const ProgressBody = Schema.Struct({
  workerId: WorkerIdText,
  percent: Percent,
  step: Schema.optional(Text(200)),
  message: Schema.optional(Text(2000)),
  data: Schema.optional(JsonValue("what the worker reports with it (at most 64 KiB)")),
  force: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "ProgressBody" })

export const WorkerPath = Schema.Struct({ workerId: WorkerIdText })

/** Which of its jobs a worker lets go (all when `ids` is absent): back to the queue, their attempt not used up. */
export const ReleaseBody = Schema.Struct({ ids: Schema.optional(Schema.Array(IdText).pipe(Schema.maxItems(1000))) }).annotations({
  identifier: "ReleaseBody"
})

export const LastEventId = Schema.Struct({
  "last-event-id": Schema.optional(Text(200)).annotations({ description: "resume after this event's id" })
})

export const WebhookBody = Schema.Struct({
  url: Text(2000),
  eventTypes: Schema.Array(Text(20)).pipe(Schema.maxItems(5)).annotations({
    description: "1 to 5 of progress, completed, failed, canceled or all"
  }),
  // the service names the field when it is over 500 characters; the schema refuses the absurd
  description: Schema.optional(Schema.NullOr(Text(10_000))),
  active: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "WebhookBody" })

/** The fields of an endpoint to change: any of `WebhookBody`'s. */
export const WebhookPatch = Schema.Struct({
  url: Schema.optional(WebhookBody.fields.url),
  eventTypes: Schema.optional(WebhookBody.fields.eventTypes),
  description: WebhookBody.fields.description,
  active: WebhookBody.fields.active
}).annotations({ identifier: "WebhookPatch" })

export const WebhookPath = Schema.Struct({ id: IdText })

/** The filter of a user's event stream. */
export const UserEventsParams = Schema.Struct({
  status: Schema.optional(StatusFilter),
  queue: Schema.optional(NameText),
  name: Schema.optional(NameText)
})

/** A page of an endpoint's deliveries. */
export const DeliveriesParams = Schema.Struct({
  page: Schema.optional(Schema.compose(Schema.NumberFromString, PageNumber)),
  limit: Schema.optional(Schema.compose(Schema.NumberFromString, PageSize))
})

/** An admin's purge of finished jobs by filter (`POST /v1/admin/jobs/purge`); every field narrows. */
export const PurgeBody = Schema.Struct({
  status: Schema.optional(StatusFilter).annotations({
    description: "finished statuses or their aliases, comma-separated (default: completed, failed, canceled, deleted)"
  }),
  queue: Schema.optional(NameText),
  owner: Schema.optional(Text(200)),
  finishedBefore: Schema.optional(Text(64)).annotations({ description: "ISO-8601 time: only jobs finished before it" }),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000))).annotations({
    description: "the most jobs this call purges (default 1,000)"
  })
}).annotations({ identifier: "PurgeBody" })
export type PurgeBody = typeof PurgeBody.Type
