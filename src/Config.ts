import { Config, ConfigError, ConfigProvider, Context, Duration, Effect, Either, Layer, Option, Record, Redacted } from "effect"
import * as Path from "node:path"
import { durationOf, durationText } from "./internal/durations.js"

// jobwatch's configuration is one list of fields (`fields` below). Each field knows its environment variable, its
// description, its default and how to read it (Effect's `Config.integer`, `Config.boolean`, `Config.redacted`,
// `Config.validate`, or a parser of the text where the environment's spelling is jobwatch's own: `5s`, `off`, lists).
// The record's type, the embedders' input type, the environment reader (`layerConfig`) and the embedders' layer
// (`layer(partial)`, which writes the given values as text and reads them through the same fields) derive from it.

/** How one field is read, under the name `read` is given, and how an embedder's value is written for it. */
interface Kind<A, I> {
  read(name: string): Config.Config<A>
  text(input: I): string
}

interface Field<A, I> extends Kind<A, I> {
  readonly env: string
  readonly description: string
  readonly fallback: A
}

const field = <A, I>(env: string, fallback: NoInfer<A>, kind: Kind<A, I>, description: string): Field<A, I> => ({
  env,
  description,
  fallback,
  ...kind
})

const invalid = (message: string) => ConfigError.InvalidData([], message)

/** A field read from its text by `parse`, which answers the value or what was expected. */
const parsed = <A>(parse: (text: string) => Either.Either<A, string>) => (name: string): Config.Config<A> =>
  Config.string(name).pipe(Config.mapOrFail((text) => Either.mapLeft(parse(text), invalid)))

const integer = (min: number, max: number): Kind<number, number> => ({
  read: (name) =>
    Config.integer(name).pipe(
      Config.validate({ message: `expected an integer from ${min} to ${max}`, validation: (n) => n >= min && n <= max })
    ),
  text: String
})

const boolean: Kind<boolean, boolean> = { read: Config.boolean, text: String }

const nonEmpty = (text: string): Either.Either<string, string> =>
  text.trim() === "" ? Either.left("expected a non-empty value") : Either.right(text.trim())

const text = (check: (text: string) => Either.Either<string, string> = Either.right): Kind<string, string> => ({
  read: parsed((raw) => Either.flatMap(nonEmpty(raw), check)),
  text: (input) => input
})

export { parseDuration } from "./internal/durations.js"

const duration = (options: { readonly positive: boolean }): Kind<Duration.Duration, Duration.DurationInput> => ({
  read: parsed((text) => durationOf(text, options.positive)),
  text: durationText
})

const offWords = /^\s*(off|none|null|disabled?|unlimited)\s*$/i

/** A value, or `off` (`none`, `disabled`, …; `null` for embedders) for "disabled": `None`. */
const orOff = <A, I>(
  parse: (text: string) => Either.Either<A, string>,
  write: (input: I) => string
): Kind<Option.Option<A>, I | null> => ({
  read: parsed((text) => offWords.test(text) ? Either.right(Option.none()) : Either.map(parse(text), Option.some)),
  text: (input) => input === null ? "off" : write(input)
})

const optionalDuration = orOff((text) => durationOf(text, true), durationText)

const optionalInteger = (max: number) =>
  orOff((text): Either.Either<number, string> => {
    const n = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN
    return n >= 1 && n <= max ? Either.right(n) : Either.left(`expected an integer from 1 to ${max} (or off), got ${JSON.stringify(text)}`)
  }, String)

/** Requests per second: `50`, `50/s`, `0.5`. */
const rate = orOff((text): Either.Either<number, string> => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*s(?:ec(?:ond)?)?)?\s*$/i.exec(text)
  const n = m === null ? Number.NaN : Number(m[1])
  return n > 0 && n <= 1_000_000
    ? Either.right(n)
    : Either.left(`expected requests per second such as 50 or 50/s (or off), got ${JSON.stringify(text)}`)
}, String)

const listOf = (text: string) => text.split(",").map((item) => item.trim()).filter((item) => item !== "")

/** A list of durations, comma-separated ("5s, 5m, 30m"); at most 20. */
const durations: Kind<ReadonlyArray<Duration.Duration>, ReadonlyArray<Duration.DurationInput>> = {
  read: parsed((text) => {
    const list = listOf(text)
    return list.length > 20
      ? Either.left("expected up to 20 durations, comma-separated, such as 5s, 5m, 30m")
      : Either.all(list.map((d) => durationOf(d, false)))
  }),
  text: (input) => input.map(durationText).join(",")
}

/** Origins, comma-separated (`*` for any). */
const origins: Kind<ReadonlyArray<string>, ReadonlyArray<string>> = {
  read: parsed((text) => {
    const list = listOf(text)
    const bad = list.find((o) => o !== "*" && !/^https?:\/\/[^/\s]+$/.test(o))
    return bad === undefined
      ? Either.right(list)
      : Either.left(`expected an origin such as https://app.example.com or *, got ${JSON.stringify(bad)}`)
  }),
  text: (input) => input.join(",")
}

const logLevels = ["debug", "info", "warn", "error"] as const
type LogLevel = typeof logLevels[number]

/** One of `values` (case aside, or an alias of one). */
const oneOf = <A extends string>(values: ReadonlyArray<A>, aliases: Readonly<Record<string, A>> = {}): Kind<A, A> => ({
  read: parsed((text) => {
    const lower = text.trim().toLowerCase()
    const value = values.find((v) => v === (aliases[lower] ?? lower))
    const expected = `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`
    return value === undefined ? Either.left(`expected ${expected}, got ${JSON.stringify(text)}`) : Either.right(value)
  }),
  text: (input) => input
})
const logLevel = oneOf<LogLevel>(logLevels, { warning: "warn" })
const logFormat = oneOf(["text", "json"] as const)

/** A URL of `scheme` (its password stays redacted); empty: none. */
const redactedUrl = (
  scheme: RegExp,
  expected: string
): Kind<Option.Option<Redacted.Redacted>, string | Redacted.Redacted | Option.Option<Redacted.Redacted>> => ({
  read: (name) =>
    Config.redacted().pipe(
      Config.map((url) => Redacted.value(url).trim()),
      Config.validate({ message: `expected ${expected}`, validation: (url) => url === "" || scheme.test(url) }),
      Config.map((url) => url === "" ? Option.none() : Option.some(Redacted.make(url))),
      Config.nested(name)
    ),
  text: (input) =>
    typeof input === "string"
      ? input
      : Redacted.isRedacted(input)
      ? Redacted.value(input)
      : Option.match(input, { onNone: () => "", onSome: Redacted.value })
})

/** A `postgres://` URL; empty: none (the embedded database). */
const databaseUrl = redactedUrl(/^postgres(ql)?:\/\//, "a postgres:// or postgresql:// URL")
/** An `amqp://` or `amqps://` URL; empty: none (the event bus is off). */
const amqpUrl = redactedUrl(/^amqps?:\/\//, "an amqp:// or amqps:// URL")

/** A RabbitMQ exchange name (letters, digits, `-`, `_`, `.`, `:`; up to 127). */
const exchangeName = (text: string): Either.Either<string, string> =>
  /^[A-Za-z0-9_.:-]{1,127}$/.test(text) ? Either.right(text) : Either.left(`expected an exchange name, got ${JSON.stringify(text)}`)

const identifier = (text: string): Either.Either<string, string> =>
  /^[a-z_][a-z0-9_]{0,62}$/.test(text)
    ? Either.right(text)
    : Either.left(`expected a lower-case SQL identifier (letters, digits, _), got ${JSON.stringify(text)}`)

const directory: Kind<string, string> = {
  read: (name) => Config.map(text().read(name), (dir) => Path.resolve(dir)),
  text: (input) => input
}

/** Every setting: its variable, default, reader and description. The one list. */
const fields = {
  databaseUrl: field("DATABASE_URL", Option.none(), databaseUrl, "PostgreSQL to use; unset starts an embedded one"),
  schema: field("JOBWATCH_SCHEMA", "jobwatch", text(identifier), "the schema of jobwatch's tables"),
  dataDir: field("JOBWATCH_DATA_DIR", Path.resolve(".jobwatch"), directory, "the embedded PostgreSQL's data"),
  host: field("HOST", "127.0.0.1", text(), "the address the HTTP server binds"),
  port: field("PORT", 8080, integer(0, 65535), "the port of the HTTP server"),
  poolSize: field("JOBWATCH_POOL_SIZE", 10, integer(1, 1000), "connections in the service's pool (LISTEN is extra)"),
  maxPayloadBytes: field("JOBWATCH_MAX_PAYLOAD_BYTES", 1024 * 1024, integer(1, 512 * 1024 * 1024), "largest payload"),
  maxBatchSize: field("JOBWATCH_MAX_BATCH_SIZE", 1000, integer(1, 10_000), "most jobs in one batch enqueue"),
  defaultPageSize: field("JOBWATCH_DEFAULT_PAGE_SIZE", 10, integer(1, 10_000), "page size when none is asked"),
  maxPageSize: field("JOBWATCH_MAX_PAGE_SIZE", 100, integer(1, 10_000), "largest page size (≥ the default one)"),
  shutdownTimeout: field("JOBWATCH_SHUTDOWN_TIMEOUT", Duration.seconds(4), duration({ positive: false }), "longest stop"),
  refreshInterval: field(
    "JOBWATCH_REFRESH_INTERVAL",
    Option.some(Duration.seconds(5)),
    optionalDuration,
    "how often every watched job is re-read whatever the doorbell said; off disables it"
  ),
  debounce: field(
    "JOBWATCH_DEBOUNCE",
    Duration.millis(50),
    duration({ positive: false }),
    "the longest a batch of wake-ups may wait during a burst"
  ),
  listenerMaxBackoff: field(
    "JOBWATCH_LISTENER_MAX_BACKOFF",
    Duration.seconds(10),
    duration({ positive: false }),
    "the cap of the LISTEN connection's reconnect backoff"
  ),
  shutdownOnListenerFailure: field(
    "JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE",
    Option.none(),
    optionalDuration,
    "exit when the LISTEN connection stays down this long; off never exits"
  ),
  heartbeatInterval: field(
    "JOBWATCH_HEARTBEAT_INTERVAL",
    Duration.seconds(10),
    duration({ positive: true }),
    "how often a worker heartbeats by default; leases last 1.5 × it"
  ),
  workerTimeout: field("JOBWATCH_WORKER_TIMEOUT", Duration.seconds(30), duration({ positive: true }), "silent worker"),
  reaperInterval: field(
    "JOBWATCH_REAPER_INTERVAL",
    Duration.seconds(1),
    duration({ positive: true }),
    "the longest the reaper sleeps between passes"
  ),
  reaper: field("JOBWATCH_REAPER", true, boolean, "whether this process takes part in the reaper election"),
  metricsPublic: field("JOBWATCH_METRICS_PUBLIC", false, boolean, "serve /metrics without a token (a private network)"),
  progressThrottle: field(
    "JOBWATCH_PROGRESS_THROTTLE",
    Duration.seconds(2),
    duration({ positive: false }),
    "per job, at most one progress write per window"
  ),
  maxWait: field("JOBWATCH_MAX_WAIT", Duration.seconds(60), duration({ positive: false }), "the longest long-poll"),
  maxBodyBytes: field("JOBWATCH_MAX_BODY_BYTES", 16 * 1024 * 1024, integer(1024, 1024 * 1024 * 1024), "largest body"),
  corsOrigins: field("JOBWATCH_CORS_ORIGINS", [], origins, "origins allowed by CORS (* for any); empty: no CORS"),
  sseKeepAlive: field("JOBWATCH_SSE_KEEPALIVE", Duration.seconds(15), duration({ positive: true }), "SSE keep-alive"),
  webhooks: field("JOBWATCH_WEBHOOKS", true, boolean, "whether this process delivers webhooks"),
  webhookTimeout: field("JOBWATCH_WEBHOOK_TIMEOUT", Duration.seconds(10), duration({ positive: true }), "one delivery"),
  webhookRetrySchedule: field(
    "JOBWATCH_WEBHOOK_RETRY_SCHEDULE",
    [Duration.seconds(5), Duration.minutes(5), Duration.minutes(30)],
    durations,
    "the waits before each retry (jittered); its length is the number of retries"
  ),
  webhookAllowPrivate: field("JOBWATCH_WEBHOOK_ALLOW_PRIVATE", false, boolean, "allow private webhook targets"),
  webhookSecretOverlap: field(
    "JOBWATCH_WEBHOOK_SECRET_OVERLAP",
    Duration.hours(24),
    duration({ positive: false }),
    "how long a rotated secret keeps signing beside the new one"
  ),
  webhookDisableAfter: field(
    "JOBWATCH_WEBHOOK_DISABLE_AFTER",
    Duration.days(5),
    duration({ positive: true }),
    "an endpoint failing without a success this long is turned off"
  ),
  webhookConcurrency: field("JOBWATCH_WEBHOOK_CONCURRENCY", 16, integer(1, 10_000), "deliveries in flight"),
  webhookEndpointConcurrency: field(
    "JOBWATCH_WEBHOOK_ENDPOINT_CONCURRENCY",
    4,
    integer(1, 1000),
    "deliveries in flight to one endpoint"
  ),
  logLevel: field("JOBWATCH_LOG_LEVEL", "info", logLevel, "the least severe level logged: debug, info, warn, error"),
  logFormat: field("JOBWATCH_LOG_FORMAT", "text", logFormat, "text (readable lines) or json (one object per line)"),
  retryMaxBackoff: field(
    "JOBWATCH_RETRY_MAX_BACKOFF",
    Duration.seconds(10),
    duration({ positive: true }),
    "the cap of every background retry loop's backoff"
  ),
  listenerCheckInterval: field(
    "JOBWATCH_LISTENER_CHECK_INTERVAL",
    Duration.seconds(5),
    duration({ positive: true }),
    "how often the LISTEN connection is checked with a bounded query"
  ),
  maxStreamsPerUser: field(
    "JOBWATCH_MAX_STREAMS_PER_USER",
    Option.some(100),
    optionalInteger(1_000_000),
    "open streams and waits one user may hold; off: no limit"
  ),
  rateLimit: field("JOBWATCH_RATE_LIMIT", Option.some(50), rate, "requests per second per user; off: no limit"),
  rateLimitBurst: field("JOBWATCH_RATE_LIMIT_BURST", 200, integer(1, 1_000_000), "a user's burst above the rate"),
  maxConnections: field("JOBWATCH_MAX_CONNECTIONS", 10_000, integer(1, 1_000_000), "open HTTP connections"),
  headersTimeout: field("JOBWATCH_HEADERS_TIMEOUT", Duration.seconds(30), duration({ positive: true }), "headers"),
  bodyTimeout: field("JOBWATCH_BODY_TIMEOUT", Duration.seconds(30), duration({ positive: true }), "whole request"),
  amqpUrl: field("JOBWATCH_AMQP_URL", Option.none(), amqpUrl, "RabbitMQ to relay every job event to; unset: off"),
  amqpExchange: field("JOBWATCH_AMQP_EXCHANGE", "events.jobs", text(exchangeName), "the topic exchange of job events"),
  amqpErpExchange: field("JOBWATCH_AMQP_ERP_EXCHANGE", "erp.outbound", text(exchangeName), "fanout of job.status.*"),
  amqpAllProgress: field("JOBWATCH_AMQP_ALL_PROGRESS", false, boolean, "relay every progress report, not milestones only"),
  amqpRelay: field("JOBWATCH_AMQP_RELAY", true, boolean, "whether this process takes part in the relay election"),
  retention: field(
    "JOBWATCH_RETENTION",
    Option.some(Duration.days(7)),
    optionalDuration,
    "finished jobs and their events are removed after this; off keeps them"
  )
}

type Fields = typeof fields
type Key = keyof Fields

/** jobwatch's configuration: one record, with defaults for everything but the database. */
export type JobWatchConfigShape = {
  readonly [K in Key]: Fields[K] extends Field<infer A, infer _I> ? A : never
}

/**
 * What an embedder passes to `JobWatchConfig.layer`: every field optional, durations as `DurationInput`, `null`
 * for "off".
 */
export type JobWatchConfigInput = {
  readonly [K in Key]?: Fields[K] extends Field<infer _A, infer I> ? I : never
}

/** The environment variable behind each field (`layerConfig`). */
export const envNames: { readonly [K in Key]: string } = Record.map(fields, (f) => f.env)

/** Every field's default (`dataDir` resolved against the working directory). */
export const defaults: JobWatchConfigShape = Record.map(fields, (f: Field<any, never>) => f.fallback)

/** What each field is for. */
export const descriptions: { readonly [K in Key]: string } = Record.map(fields, (f) => f.description)

/** Every field, named by `nameOf`, with its default, then the checks across fields. */
const configOf = (nameOf: (key: Key) => string): Config.Config<JobWatchConfigShape> => {
  // `Record.map` cannot say that each key keeps its own type: `any` here is the one place that is taken on trust,
  // the types above (derived from `fields`) say what each field reads
  const each: { readonly [K in Key]: Config.Config<JobWatchConfigShape[K]> } = Record.map(
    fields,
    (f: Field<any, never>, key) =>
      f.read(nameOf(key)).pipe(Config.withDescription(f.description), Config.withDefault(f.fallback))
  )
  return Config.all(each).pipe(
    Config.mapOrFail((config) =>
      config.maxPageSize < config.defaultPageSize
        ? Either.left(ConfigError.InvalidData(
          [nameOf("maxPageSize")],
          `expected at least the default page size (${config.defaultPageSize}), got ${config.maxPageSize}`
        ))
        : Either.right(config)
    )
  )
}

/** jobwatch's configuration record. */
export class JobWatchConfig extends Context.Tag("jobwatch/Config")<JobWatchConfig, JobWatchConfigShape>() {
  /** The defaults overridden by `input`, validated by the same readers as the environment; errors name the field. */
  static readonly make = (input: JobWatchConfigInput): Effect.Effect<JobWatchConfigShape, ConfigError.ConfigError> => {
    const given = new Map<string, string>()
    for (const key of Record.keys(fields)) {
      const value = input[key]
      const f: Field<unknown, NonNullable<typeof value> | null> = fields[key]
      if (value !== undefined) given.set(key, f.text(value))
    }
    return Effect.withConfigProvider(configOf((key) => key), ConfigProvider.fromMap(given))
  }

  /**
   * For embedders: the defaults overridden by `input`. The host's `PgClient` layer sizes its own pool:
   * `poolSize` (`JOBWATCH_POOL_SIZE`) is the pool of `npm start`'s service.
   */
  static readonly layer = (input: JobWatchConfigInput = {}): Layer.Layer<JobWatchConfig, ConfigError.ConfigError> =>
    Layer.effect(JobWatchConfig, JobWatchConfig.make(input))

  /** Read from the environment (`DATABASE_URL`, `JOBWATCH_SCHEMA`, `PORT`, …); errors name the variable. */
  static readonly layerConfig: Layer.Layer<JobWatchConfig, ConfigError.ConfigError> = Layer.effect(
    JobWatchConfig,
    configOf((key) => envNames[key])
  )
}
