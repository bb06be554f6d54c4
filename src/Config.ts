import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import * as Path from "node:path"

/** jobwatch's configuration: one record, with defaults for everything but the database. */
export interface JobWatchConfigShape {
  /** PostgreSQL to use; `None` starts an embedded PostgreSQL in `dataDir`. */
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  /** The schema that holds jobwatch's tables (created by the migrations). */
  readonly schema: string
  /** Where the embedded PostgreSQL (and the generated secrets) live. */
  readonly dataDir: string
  readonly host: string
  readonly port: number
  /** Connections in the pool (the LISTEN connection is extra). */
  readonly poolSize: number
  readonly maxPayloadBytes: number
  readonly maxBatchSize: number
  readonly defaultPageSize: number
  readonly maxPageSize: number
  /** How long a graceful shutdown may take before the process gives up waiting. */
  readonly shutdownTimeout: Duration.Duration
  /** The safety net: how often every watched job is re-read whatever the doorbell said; `None` disables it. */
  readonly refreshInterval: Option.Option<Duration.Duration>
  /**
   * The longest a batch of wake-ups may wait. A lone doorbell is handled at once; during a burst (a batch
   * touching many jobs) reads are spaced by up to this much so that a burst costs a bounded number of reads.
   */
  readonly debounce: Duration.Duration
  /** The cap of the LISTEN connection's reconnect backoff (exponential from 100 ms, jittered). */
  readonly listenerMaxBackoff: Duration.Duration
  /** Exit the process when the LISTEN connection stays down this long (for supervisors); `None` never exits. */
  readonly shutdownOnListenerFailure: Option.Option<Duration.Duration>
  /** How often a worker heartbeats by default; its leases last 1.5 × its interval. */
  readonly heartbeatInterval: Duration.Duration
  /** A worker silent for longer is forgotten by the reaper. */
  readonly workerTimeout: Duration.Duration
  /** How often the reaper looks for expired leases, timeouts and due scheduled jobs. */
  readonly reaperInterval: Duration.Duration
  /** Whether this process takes part in the reaper election (one reaper per cluster runs at a time). */
  readonly reaper: boolean
  /** How long finished jobs (with their events and webhook deliveries) are kept, then purged; `None`: forever. */
  readonly retention: Option.Option<Duration.Duration>
  /** Per job, at most one progress write per window (the first at once, the last always). */
  readonly progressThrottle: Duration.Duration
  /** The longest an HTTP long-poll (`Prefer: wait=N`, `waitSeconds`, `timeoutSeconds`) may wait. */
  readonly maxWait: Duration.Duration
  /** The largest HTTP request body; larger ones answer 413 before they are parsed. */
  readonly maxBodyBytes: number
  /** Origins allowed by CORS (`*` for any); empty: no CORS headers. */
  readonly corsOrigins: ReadonlyArray<string>
  /** How often an idle Server-Sent Events stream sends a comment, so that proxies keep it open. */
  readonly sseKeepAlive: Duration.Duration
  /** Whether this process delivers webhooks (any number of processes may). */
  readonly webhooks: boolean
  /** How long one delivery attempt may take. */
  readonly webhookTimeout: Duration.Duration
  /** The waits before each retry (jittered); its length is the number of retries. */
  readonly webhookRetrySchedule: ReadonlyArray<Duration.Duration>
  /** Lift the refusal of private, loopback and link-local targets (development and tests). */
  readonly webhookAllowPrivate: boolean
  /** How long a rotated secret keeps signing alongside the new one. */
  readonly webhookSecretOverlap: Duration.Duration
  /** An endpoint failing without a success for this long is turned off. */
  readonly webhookDisableAfter: Duration.Duration
  /** Deliveries in flight in this process, in all, and per endpoint. */
  readonly webhookConcurrency: number
  readonly webhookEndpointConcurrency: number
  /** The least severe log level written: `debug`, `info` (default), `warn` or `error`. */
  readonly logLevel: "debug" | "info" | "warn" | "error"
  /** The cap of every background retry loop's backoff (exponential from 100 ms, jittered). */
  readonly retryMaxBackoff: Duration.Duration
  /** How often the LISTEN connection is checked with a bounded query; an unanswered check is a dead connection. */
  readonly listenerCheckInterval: Duration.Duration
  /** Open event streams and waiting requests one user may hold at once; `None`: no limit. */
  readonly maxStreamsPerUser: Option.Option<number>
  /** Requests per second one user may make, on average (a token bucket); `None`: no limit. */
  readonly rateLimit: Option.Option<number>
  /** The bucket's size: requests one user may make in a burst above the rate. */
  readonly rateLimitBurst: number
  /** Open HTTP connections the server accepts at once; further ones are refused. */
  readonly maxConnections: number
  /** How long a client may take to send a request's headers, and then its body. */
  readonly headersTimeout: Duration.Duration
  readonly bodyTimeout: Duration.Duration
}

/** What an embedder passes to `JobWatchConfig.layer`: every field optional, durations as `DurationInput`. */
export type JobWatchConfigInput = {
  readonly [K in keyof JobWatchConfigShape]?: JobWatchConfigShape[K] extends Duration.Duration ? Duration.DurationInput
    : JobWatchConfigShape[K] extends ReadonlyArray<Duration.Duration> ? ReadonlyArray<Duration.DurationInput>
    : JobWatchConfigShape[K] extends Option.Option<Duration.Duration> ? Duration.DurationInput | null
    : JobWatchConfigShape[K] extends Option.Option<Redacted.Redacted> ? string | Redacted.Redacted | Option.Option<Redacted.Redacted>
    : JobWatchConfigShape[K] extends Option.Option<number> ? number | null
    : JobWatchConfigShape[K]
}

export const defaults: JobWatchConfigShape = {
  databaseUrl: Option.none(),
  schema: "jobwatch",
  dataDir: ".jobwatch",
  host: "127.0.0.1",
  port: 8080,
  poolSize: 10,
  maxPayloadBytes: 1024 * 1024,
  maxBatchSize: 1000,
  defaultPageSize: 10,
  maxPageSize: 100,
  shutdownTimeout: Duration.seconds(4),
  refreshInterval: Option.some(Duration.seconds(5)),
  debounce: Duration.millis(50),
  listenerMaxBackoff: Duration.seconds(10),
  shutdownOnListenerFailure: Option.none(),
  heartbeatInterval: Duration.seconds(10),
  workerTimeout: Duration.seconds(30),
  reaperInterval: Duration.seconds(1),
  reaper: true,
  retention: Option.some(Duration.days(7)),
  progressThrottle: Duration.seconds(2),
  maxWait: Duration.seconds(60),
  maxBodyBytes: 16 * 1024 * 1024,
  corsOrigins: [],
  sseKeepAlive: Duration.seconds(15),
  webhooks: true,
  webhookTimeout: Duration.seconds(10),
  webhookRetrySchedule: [Duration.seconds(5), Duration.minutes(5), Duration.minutes(30)],
  webhookAllowPrivate: false,
  webhookSecretOverlap: Duration.hours(24),
  webhookDisableAfter: Duration.days(5),
  webhookConcurrency: 16,
  webhookEndpointConcurrency: 4,
  logLevel: "info",
  retryMaxBackoff: Duration.seconds(10),
  listenerCheckInterval: Duration.seconds(5),
  maxStreamsPerUser: Option.some(100),
  rateLimit: Option.some(50),
  rateLimitBurst: 200,
  maxConnections: 10_000,
  headersTimeout: Duration.seconds(30),
  bodyTimeout: Duration.seconds(30)
}

/** The environment variable behind each field (`layerConfig`). */
export const envNames: { readonly [K in keyof JobWatchConfigShape]: string } = {
  databaseUrl: "DATABASE_URL",
  schema: "JOBWATCH_SCHEMA",
  dataDir: "JOBWATCH_DATA_DIR",
  host: "HOST",
  port: "PORT",
  poolSize: "JOBWATCH_POOL_SIZE",
  maxPayloadBytes: "JOBWATCH_MAX_PAYLOAD_BYTES",
  maxBatchSize: "JOBWATCH_MAX_BATCH_SIZE",
  defaultPageSize: "JOBWATCH_DEFAULT_PAGE_SIZE",
  maxPageSize: "JOBWATCH_MAX_PAGE_SIZE",
  shutdownTimeout: "JOBWATCH_SHUTDOWN_TIMEOUT",
  refreshInterval: "JOBWATCH_REFRESH_INTERVAL",
  debounce: "JOBWATCH_DEBOUNCE",
  listenerMaxBackoff: "JOBWATCH_LISTENER_MAX_BACKOFF",
  shutdownOnListenerFailure: "JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE",
  heartbeatInterval: "JOBWATCH_HEARTBEAT_INTERVAL",
  workerTimeout: "JOBWATCH_WORKER_TIMEOUT",
  reaperInterval: "JOBWATCH_REAPER_INTERVAL",
  reaper: "JOBWATCH_REAPER",
  retention: "JOBWATCH_RETENTION",
  progressThrottle: "JOBWATCH_PROGRESS_THROTTLE",
  maxWait: "JOBWATCH_MAX_WAIT",
  maxBodyBytes: "JOBWATCH_MAX_BODY_BYTES",
  corsOrigins: "JOBWATCH_CORS_ORIGINS",
  sseKeepAlive: "JOBWATCH_SSE_KEEPALIVE",
  webhooks: "JOBWATCH_WEBHOOKS",
  webhookTimeout: "JOBWATCH_WEBHOOK_TIMEOUT",
  webhookRetrySchedule: "JOBWATCH_WEBHOOK_RETRY_SCHEDULE",
  webhookAllowPrivate: "JOBWATCH_WEBHOOK_ALLOW_PRIVATE",
  webhookSecretOverlap: "JOBWATCH_WEBHOOK_SECRET_OVERLAP",
  webhookDisableAfter: "JOBWATCH_WEBHOOK_DISABLE_AFTER",
  webhookConcurrency: "JOBWATCH_WEBHOOK_CONCURRENCY",
  webhookEndpointConcurrency: "JOBWATCH_WEBHOOK_ENDPOINT_CONCURRENCY",
  logLevel: "JOBWATCH_LOG_LEVEL",
  retryMaxBackoff: "JOBWATCH_RETRY_MAX_BACKOFF",
  listenerCheckInterval: "JOBWATCH_LISTENER_CHECK_INTERVAL",
  maxStreamsPerUser: "JOBWATCH_MAX_STREAMS_PER_USER",
  rateLimit: "JOBWATCH_RATE_LIMIT",
  rateLimitBurst: "JOBWATCH_RATE_LIMIT_BURST",
  maxConnections: "JOBWATCH_MAX_CONNECTIONS",
  headersTimeout: "JOBWATCH_HEADERS_TIMEOUT",
  bodyTimeout: "JOBWATCH_BODY_TIMEOUT"
}

type Field = keyof JobWatchConfigShape
type Invalid = { readonly field: Field; readonly message: string }

const identifier = /^[a-z_][a-z0-9_]{0,62}$/

const intIn = (field: Field, value: unknown, min: number, max: number): Either.Either<number, Invalid> =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? Either.right(value)
    : Either.left({ field, message: `expected an integer from ${min} to ${max}, got ${String(value)}` })

const shorthand = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i
const shorthandUnits = { ms: "millis", s: "seconds", m: "minutes", h: "hours", d: "days" } as const

/** Parses a duration: a `DurationInput`, or a string like `5 seconds`, `500 millis`, `5s`, `250ms`. */
export const parseDuration = (input: unknown): Option.Option<Duration.Duration> => {
  if (typeof input === "string") {
    const m = shorthand.exec(input)
    if (m !== null) {
      const unit = shorthandUnits[m[2]!.toLowerCase() as keyof typeof shorthandUnits]
      return Duration.decodeUnknown(`${m[1]} ${unit}`)
    }
    return Duration.decodeUnknown(input.trim())
  }
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? Option.some(Duration.millis(input)) : Option.none()
  return Duration.decodeUnknown(input)
}

const duration = (field: Field, value: unknown): Either.Either<Duration.Duration, Invalid> =>
  Option.match(parseDuration(value), {
    onNone: () => Either.left({ field, message: `expected a duration such as "5 seconds" or "250ms", got ${String(value)}` }),
    onSome: Either.right
  })

/** A duration, or `null`/`"off"`/`"none"` (and `None`) for "disabled". */
const optionalDuration = (field: Field, value: unknown): Either.Either<Option.Option<Duration.Duration>, Invalid> => {
  const inner = Option.isOption(value) ? Option.getOrNull(value) : value
  if (inner === null || (typeof inner === "string" && /^\s*(off|none|null|disabled?)\s*$/i.test(inner))) {
    return Either.right(Option.none())
  }
  return Either.map(duration(field, inner), Option.some)
}

const str = (field: Field, value: unknown): Either.Either<string, Invalid> =>
  typeof value === "string" && value.trim() !== ""
    ? Either.right(value.trim())
    : Either.left({ field, message: `expected a non-empty string, got ${JSON.stringify(value)}` })

const url = (value: unknown): Either.Either<Option.Option<Redacted.Redacted>, Invalid> => {
  const inner = Option.isOption(value) ? Option.getOrUndefined(value) : value
  if (inner === undefined || inner === null) return Either.right(Option.none())
  const text = Redacted.isRedacted(inner) ? Redacted.value(inner) : inner
  if (typeof text !== "string") return Either.left({ field: "databaseUrl", message: "expected a connection string" })
  if (text.trim() === "") return Either.right(Option.none())
  return /^postgres(ql)?:\/\//.test(text.trim())
    ? Either.right(Option.some(Redacted.make(text.trim())))
    : Either.left({ field: "databaseUrl", message: "expected a postgres:// or postgresql:// URL" })
}

const positive = (
  field: Field,
  value: Option.Option<Duration.Duration>
): Either.Either<Option.Option<Duration.Duration>, Invalid> =>
  Option.isSome(value) && Duration.toMillis(value.value) <= 0
    ? Either.left({ field, message: "expected a duration above zero (or off)" })
    : Either.right(value)

const positiveDuration = (field: Field, value: unknown): Either.Either<Duration.Duration, Invalid> =>
  Either.flatMap(duration(field, value), (d) =>
    Duration.toMillis(d) > 0 ? Either.right(d) : Either.left({ field, message: "expected a duration above zero" }))

const bool = (field: Field, value: unknown): Either.Either<boolean, Invalid> => {
  if (typeof value === "boolean") return Either.right(value)
  if (typeof value === "string" && /^\s*(true|1|yes|on)\s*$/i.test(value)) return Either.right(true)
  if (typeof value === "string" && /^\s*(false|0|no|off)\s*$/i.test(value)) return Either.right(false)
  return Either.left({ field, message: `expected true or false, got ${JSON.stringify(value)}` })
}

/** A list of durations, or a comma-separated string of them ("5s, 5m, 30m"); at most 20. */
const durations = (field: Field, value: unknown): Either.Either<ReadonlyArray<Duration.Duration>, Invalid> => {
  const list: ReadonlyArray<unknown> | undefined = typeof value === "string"
    ? value.split(",").map((d) => d.trim()).filter((d) => d !== "")
    : Array.isArray(value)
    ? value
    : undefined
  if (list === undefined || list.length > 20) {
    return Either.left({ field, message: "expected up to 20 durations, comma-separated, such as 5s, 5m, 30m" })
  }
  return Either.all(list.map((d) => duration(field, d)))
}

/** A list of origins, or a comma-separated string of them. */
const origins = (value: unknown): Either.Either<ReadonlyArray<string>, Invalid> => {
  const list = typeof value === "string" ? value.split(",") : value
  if (!Array.isArray(list) || !list.every((o) => typeof o === "string")) {
    return Either.left({ field: "corsOrigins", message: "expected origins such as https://app.example.com, comma-separated" })
  }
  const trimmed = list.map((o: string) => o.trim()).filter((o) => o !== "")
  const bad = trimmed.find((o) => o !== "*" && !/^https?:\/\/[^/\s]+$/.test(o))
  return bad === undefined
    ? Either.right(trimmed)
    : Either.left({ field: "corsOrigins", message: `expected an origin such as https://app.example.com or *, got ${JSON.stringify(bad)}` })
}

const logLevels = ["debug", "info", "warn", "error"] as const

const logLevel = (value: unknown): Either.Either<JobWatchConfigShape["logLevel"], Invalid> => {
  const text = typeof value === "string" ? value.trim().toLowerCase() : value
  const level = text === "warning" ? "warn" : text
  return logLevels.find((l) => l === level) !== undefined
    ? Either.right(level as JobWatchConfigShape["logLevel"])
    : Either.left({ field: "logLevel", message: `expected debug, info, warn or error, got ${JSON.stringify(value)}` })
}

const isOff = (value: unknown) =>
  value === null || (typeof value === "string" && /^\s*(off|none|null|disabled?|unlimited)\s*$/i.test(value))

/** A positive integer up to `max`, or `null`/`"off"` (and `None`) for "no limit". */
const optionalInt = (field: Field, value: unknown, max: number): Either.Either<Option.Option<number>, Invalid> => {
  const inner = Option.isOption(value) ? Option.getOrNull(value) : value
  if (isOff(inner)) return Either.right(Option.none())
  return Either.map(intIn(field, inner, 1, max), Option.some)
}

/** Requests per second: a positive number (`50`, `50/s`, `0.5`), or `null`/`"off"` (and `None`) for "no limit". */
const rate = (value: unknown): Either.Either<Option.Option<number>, Invalid> => {
  const inner = Option.isOption(value) ? Option.getOrNull(value) : value
  if (isOff(inner)) return Either.right(Option.none())
  const m = typeof inner === "string" ? /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*s(?:ec(?:ond)?)?)?\s*$/i.exec(inner) : null
  const n = typeof inner === "number" ? inner : m !== null ? Number(m[1]) : Number.NaN
  return Number.isFinite(n) && n > 0 && n <= 1_000_000
    ? Either.right(Option.some(n))
    : Either.left({ field: "rateLimit", message: `expected requests per second such as 50 or 50/s (or off), got ${JSON.stringify(inner)}` })
}

type RawInput = { readonly [K in Field]?: unknown }

const check = (input: RawInput): Either.Either<JobWatchConfigShape, Invalid> =>
  Either.gen(function*() {
    const v: { readonly [K in Field]: unknown } = { ...defaults, ...input }
    const schema = yield* str("schema", v.schema)
    if (!identifier.test(schema)) {
      return yield* Either.left<Invalid>({
        field: "schema",
        message: `expected a lower-case SQL identifier (letters, digits, _), got ${JSON.stringify(schema)}`
      })
    }
    const defaultPageSize = yield* intIn("defaultPageSize", v.defaultPageSize, 1, 10_000)
    return {
      databaseUrl: yield* url(v.databaseUrl),
      schema,
      dataDir: Path.resolve(yield* str("dataDir", v.dataDir)),
      host: yield* str("host", v.host),
      port: yield* intIn("port", v.port, 0, 65535),
      poolSize: yield* intIn("poolSize", v.poolSize, 1, 1000),
      maxPayloadBytes: yield* intIn("maxPayloadBytes", v.maxPayloadBytes, 1, 512 * 1024 * 1024),
      maxBatchSize: yield* intIn("maxBatchSize", v.maxBatchSize, 1, 10_000),
      defaultPageSize,
      maxPageSize: yield* intIn("maxPageSize", v.maxPageSize, defaultPageSize, 10_000),
      shutdownTimeout: yield* duration("shutdownTimeout", v.shutdownTimeout),
      refreshInterval: yield* positive("refreshInterval", yield* optionalDuration("refreshInterval", v.refreshInterval)),
      debounce: yield* duration("debounce", v.debounce),
      listenerMaxBackoff: yield* duration("listenerMaxBackoff", v.listenerMaxBackoff),
      shutdownOnListenerFailure: yield* optionalDuration("shutdownOnListenerFailure", v.shutdownOnListenerFailure),
      heartbeatInterval: yield* positiveDuration("heartbeatInterval", v.heartbeatInterval),
      workerTimeout: yield* positiveDuration("workerTimeout", v.workerTimeout),
      reaperInterval: yield* positiveDuration("reaperInterval", v.reaperInterval),
      reaper: yield* bool("reaper", v.reaper),
      retention: yield* positive("retention", yield* optionalDuration("retention", v.retention)),
      progressThrottle: yield* duration("progressThrottle", v.progressThrottle),
      maxWait: yield* duration("maxWait", v.maxWait),
      maxBodyBytes: yield* intIn("maxBodyBytes", v.maxBodyBytes, 1024, 1024 * 1024 * 1024),
      corsOrigins: yield* origins(v.corsOrigins),
      sseKeepAlive: yield* positiveDuration("sseKeepAlive", v.sseKeepAlive),
      webhooks: yield* bool("webhooks", v.webhooks),
      webhookTimeout: yield* positiveDuration("webhookTimeout", v.webhookTimeout),
      webhookRetrySchedule: yield* durations("webhookRetrySchedule", v.webhookRetrySchedule),
      webhookAllowPrivate: yield* bool("webhookAllowPrivate", v.webhookAllowPrivate),
      webhookSecretOverlap: yield* duration("webhookSecretOverlap", v.webhookSecretOverlap),
      webhookDisableAfter: yield* positiveDuration("webhookDisableAfter", v.webhookDisableAfter),
      webhookConcurrency: yield* intIn("webhookConcurrency", v.webhookConcurrency, 1, 10_000),
      webhookEndpointConcurrency: yield* intIn("webhookEndpointConcurrency", v.webhookEndpointConcurrency, 1, 1000),
      logLevel: yield* logLevel(v.logLevel),
      retryMaxBackoff: yield* positiveDuration("retryMaxBackoff", v.retryMaxBackoff),
      listenerCheckInterval: yield* positiveDuration("listenerCheckInterval", v.listenerCheckInterval),
      maxStreamsPerUser: yield* optionalInt("maxStreamsPerUser", v.maxStreamsPerUser, 1_000_000),
      rateLimit: yield* rate(v.rateLimit),
      rateLimitBurst: yield* intIn("rateLimitBurst", v.rateLimitBurst, 1, 1_000_000),
      maxConnections: yield* intIn("maxConnections", v.maxConnections, 1, 1_000_000),
      headersTimeout: yield* positiveDuration("headersTimeout", v.headersTimeout),
      bodyTimeout: yield* positiveDuration("bodyTimeout", v.bodyTimeout)
    }
  })

/** jobwatch's configuration record. */
export class JobWatchConfig extends Context.Tag("jobwatch/Config")<JobWatchConfig, JobWatchConfigShape>() {
  /** Validates a partial configuration over the defaults; a bad value fails naming its field. */
  static readonly make = (
    input: JobWatchConfigInput | RawInput,
    nameOf: (field: Field) => string = (field) => field
  ): Effect.Effect<JobWatchConfigShape, ConfigError.ConfigError> =>
    Either.match(check(input), {
      onLeft: ({ field, message }) => Effect.fail(ConfigError.InvalidData([nameOf(field)], message)),
      onRight: Effect.succeed
    })

  /** For embedders: the defaults overridden by `input`. */
  static readonly layer = (input: JobWatchConfigInput = {}): Layer.Layer<JobWatchConfig, ConfigError.ConfigError> =>
    Layer.effect(JobWatchConfig, JobWatchConfig.make(input))

  /** Read from the environment (`DATABASE_URL`, `JOBWATCH_SCHEMA`, `PORT`, …); errors name the variable. */
  static readonly layerConfig: Layer.Layer<JobWatchConfig, ConfigError.ConfigError> = Layer.effect(
    JobWatchConfig,
    Effect.gen(function*() {
      const str = (field: Field) => Config.option(Config.string(envNames[field]))
      // integers are read as strings so that a bad value reaches our check and its message
      const int = (field: Field) =>
        Config.option(Config.string(envNames[field])).pipe(
          Config.map(Option.map((text) => (/^-?\d+$/.test(text.trim()) ? Number(text) : text)))
        )
      const raw = yield* Config.all({
        databaseUrl: Config.option(Config.redacted(envNames.databaseUrl)),
        schema: str("schema"),
        dataDir: str("dataDir"),
        host: str("host"),
        port: int("port"),
        poolSize: int("poolSize"),
        maxPayloadBytes: int("maxPayloadBytes"),
        maxBatchSize: int("maxBatchSize"),
        defaultPageSize: int("defaultPageSize"),
        maxPageSize: int("maxPageSize"),
        shutdownTimeout: str("shutdownTimeout"),
        refreshInterval: str("refreshInterval"),
        debounce: str("debounce"),
        listenerMaxBackoff: str("listenerMaxBackoff"),
        shutdownOnListenerFailure: str("shutdownOnListenerFailure"),
        heartbeatInterval: str("heartbeatInterval"),
        workerTimeout: str("workerTimeout"),
        reaperInterval: str("reaperInterval"),
        reaper: str("reaper"),
        retention: str("retention"),
        progressThrottle: str("progressThrottle"),
        maxWait: str("maxWait"),
        maxBodyBytes: int("maxBodyBytes"),
        corsOrigins: Config.option(Config.string(envNames.corsOrigins)),
        sseKeepAlive: str("sseKeepAlive"),
        webhooks: str("webhooks"),
        webhookTimeout: str("webhookTimeout"),
        webhookRetrySchedule: Config.option(Config.string(envNames.webhookRetrySchedule)),
        webhookAllowPrivate: str("webhookAllowPrivate"),
        webhookSecretOverlap: str("webhookSecretOverlap"),
        webhookDisableAfter: str("webhookDisableAfter"),
        webhookConcurrency: int("webhookConcurrency"),
        webhookEndpointConcurrency: int("webhookEndpointConcurrency"),
        logLevel: str("logLevel"),
        retryMaxBackoff: str("retryMaxBackoff"),
        listenerCheckInterval: str("listenerCheckInterval"),
        maxStreamsPerUser: int("maxStreamsPerUser"),
        rateLimit: str("rateLimit"),
        rateLimitBurst: int("rateLimitBurst"),
        maxConnections: int("maxConnections"),
        headersTimeout: str("headersTimeout"),
        bodyTimeout: str("bodyTimeout")
      })
      const input: Partial<Record<Field, unknown>> = {}
      for (const [field, value] of Object.entries(raw)) {
        if (Option.isSome<unknown>(value)) input[field as Field] = value.value
      }
      return yield* JobWatchConfig.make(input, (field) => envNames[field])
    })
  )
}
