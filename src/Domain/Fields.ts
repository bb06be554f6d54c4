import { DateTime, Duration, ParseResult, Schema } from "effect"
import { JobId } from "./JobId.js"
import { allStatuses, resolveStatus, statusAliases } from "./JobStatus.js"
import {
  isStorableNumber,
  isStorableText,
  jsonValueTooDeep,
  MAX_JSON_DEPTH,
  textProblem,
  UUID_PATTERN
} from "./Values.js"

// The fields of the request schemas (`Requests.ts`), each with its bounds, shared by the HTTP API, the RPC group
// and the services (which check what code passes in with the same schemas, `internal/invalid.ts`).
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
    Schema.maxLength(max, {
      message: (issue) => `must have at most ${max} characters, got ${String(issue.actual).length}`
    }),
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

export const seconds = (cap: keyof typeof DurationCaps) => SecondsDuration(DurationCaps[cap].min, DurationCaps[cap].max)

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
export const IntParam = (schema: Schema.Schema<number>, min: number, max: number, description?: string) =>
  Schema.compose(Schema.NumberFromString, schema).annotations({
    jsonSchema: { type: "integer", minimum: min, maximum: max, ...(description === undefined ? {} : { description }) }
  })
export const PageParam = IntParam(PageNumber, 1, 1_000_000)
export const LimitParam = IntParam(
  PageSize,
  1,
  MAX_PAGE_SIZE_CEILING,
  `the page size: at most JOBWATCH_MAX_PAGE_SIZE (default 100, never above ${MAX_PAGE_SIZE_CEILING})`
)

/** A progress percent: any finite number (clamped to 0–100 by the service), not a subnormal one. */
export const Percent = Schema.Number.pipe(
  Schema.finite(),
  Schema.filter(isStorableNumber, {
    message: () => "a percent must be 0 or at least 2.2250738585072014e-308 in magnitude",
    jsonSchema: {}
  })
).annotations({ description: "0 to 100 (values outside are clamped); never below the job's current percent" })

export const Priority = Schema.Int.pipe(Schema.between(-INT32, INT32)).annotations({ description: "higher runs first" })
/** The most finished jobs one purge call removes. */
export const PurgeLimit = Schema.Int.pipe(Schema.between(1, 10_000))
export const MaxAttempts = Schema.Int.pipe(Schema.between(1, 1000))
export const RunAtText = Text(64).pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T/, { message: () => "must be a date-time (ISO 8601)" })
).annotations({ description: "an ISO-8601 date-time, 1970 to 9999" })
/** A point in time from 1970 to 9999 (what PostgreSQL stores and every client parses). */
export const Instant = Schema.ValidDateFromSelf.pipe(
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

export const Multiplier = Schema.Number.pipe(Schema.finite(), Schema.between(1, 100))

/** `runAt` from code: a `Date`, a `DateTime` or an ISO-8601 text. */
export const RunAtInput = Schema.transform(
  Schema.Union(Schema.DateFromSelf, Schema.DateTimeUtcFromSelf, Schema.DateTimeZonedFromSelf, RunAtText),
  Schema.DateFromSelf,
  {
    strict: true,
    decode: (input) =>
      input instanceof Date ? input : typeof input === "string" ? new Date(input) : DateTime.toDateUtc(input),
    encode: (date) => date
  }
).pipe(Schema.compose(Instant))

/** A service's duration option (a `DurationInput`) within the cap the wire's seconds have. */
export const during = (cap: keyof typeof DurationCaps) =>
  DurationWithin(DurationCaps[cap].min, DurationCaps[cap].max, DurationCaps[cap].label)
/** Job ids, 1 to 1,000. */
export const JobIds = Schema.Array(JobIdFromString).pipe(Schema.minItems(1), Schema.maxItems(MAX_IDS))

const aliases = Object.keys(statusAliases).join(", ")

/** Statuses or their aliases, comma-separated, decoded to the canonical statuses they name. */
export const StatusFilter = Schema.transformOrFail(
  Text(1000).annotations({
    description: `statuses or aliases, comma-separated: ${allStatuses.join(", ")}; ${aliases}`,
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
          const message = `unknown status ${JSON.stringify(term.slice(0, 60))}; expected one of ${
            allStatuses.join(", ")
          } or an alias (${aliases})`
          return ParseResult.fail(new ParseResult.Type(ast, text, message))
        }
        for (const status of resolved) if (!statuses.includes(status)) statuses.push(status)
      }
      return ParseResult.succeed(statuses)
    },
    encode: (statuses) => ParseResult.succeed(statuses.join(","))
  }
)

/** Queue (or job) names a worker serves: 1 to 100. */
export const Names = Schema.Array(NameText).pipe(Schema.minItems(1), Schema.maxItems(100))
/** How many jobs one claim takes. */
export const ClaimLimit = Schema.Int.pipe(Schema.between(1, 1000))

/** A failure's machine-readable code, and what went wrong. */
export const ErrorCode = Text(200)
export const ErrorMessage = Text(10_000)
