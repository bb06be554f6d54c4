import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Option, Record, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { defaults, envNames, JobWatchConfig, parseDuration } from "../src/Config.js"
import type { JobWatchConfigShape } from "../src/Config.js"

const fromEnv = (env: Record<string, string>) =>
  JobWatchConfig.pipe(
    Effect.provide(JobWatchConfig.layerConfig),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const failureOf = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(fromEnv(env))
    if (Either.isRight(result)) return assert.fail(`expected ${JSON.stringify(env)} to be refused`)
    return String(result.left)
  })

describe("JobWatchConfig", () => {
  it.effect("defaults with an empty environment", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({})
      assert.isTrue(Option.isNone(config.databaseUrl))
      assert.strictEqual(config.schema, "jobwatch")
      assert.strictEqual(config.dataDir, Path.resolve(".jobwatch"))
      assert.strictEqual(config.port, 8080)
      assert.strictEqual(config.host, "127.0.0.1")
      assert.strictEqual(config.maxPayloadBytes, 1024 * 1024)
      assert.strictEqual(config.maxBatchSize, 1000)
    }))

  it.effect("reads every variable", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({
        DATABASE_URL: "postgres://u:p@db:5432/app",
        JOBWATCH_SCHEMA: "jw_prod",
        JOBWATCH_DATA_DIR: "/srv/jobwatch",
        HOST: "0.0.0.0",
        PORT: "9000",
        JOBWATCH_POOL_SIZE: "20",
        JOBWATCH_MAX_PAYLOAD_BYTES: "2048",
        JOBWATCH_MAX_BATCH_SIZE: "50",
        JOBWATCH_DEFAULT_PAGE_SIZE: "20",
        JOBWATCH_MAX_PAGE_SIZE: "200",
        JOBWATCH_SHUTDOWN_TIMEOUT: "2500ms",
        JOBWATCH_HEARTBEAT_INTERVAL: "5s",
        JOBWATCH_WORKER_TIMEOUT: "1m",
        JOBWATCH_REAPER: "off",
        JOBWATCH_REAPER_INTERVAL: "500ms",
        JOBWATCH_PROGRESS_THROTTLE: "1s",
        JOBWATCH_MAX_WAIT: "2m",
        JOBWATCH_MAX_BODY_BYTES: "65536",
        JOBWATCH_CORS_ORIGINS: "https://app.example.com, http://localhost:5173"
      })
      assert.strictEqual(Redacted.value(Option.getOrThrow(config.databaseUrl)), "postgres://u:p@db:5432/app")
      assert.strictEqual(config.schema, "jw_prod")
      assert.strictEqual(config.dataDir, "/srv/jobwatch")
      assert.strictEqual(config.host, "0.0.0.0")
      assert.strictEqual(config.port, 9000)
      assert.strictEqual(config.poolSize, 20)
      assert.strictEqual(config.maxPayloadBytes, 2048)
      assert.strictEqual(config.maxBatchSize, 50)
      assert.strictEqual(config.defaultPageSize, 20)
      assert.strictEqual(config.maxPageSize, 200)
      assert.strictEqual(Duration.toMillis(config.shutdownTimeout), 2500)
      assert.strictEqual(Duration.toMillis(config.heartbeatInterval), 5000)
      assert.strictEqual(Duration.toMillis(config.workerTimeout), 60_000)
      assert.isFalse(config.reaper)
      assert.strictEqual(Duration.toMillis(config.reaperInterval), 500)
      assert.strictEqual(Duration.toMillis(config.progressThrottle), 1000)
      assert.strictEqual(Duration.toMillis(config.maxWait), 120_000)
      assert.strictEqual(config.maxBodyBytes, 65536)
      assert.deepStrictEqual(config.corsOrigins, ["https://app.example.com", "http://localhost:5173"])
    }))

  it.effect("an empty DATABASE_URL means the embedded database", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone((yield* fromEnv({ DATABASE_URL: "" })).databaseUrl))
    }))

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["PORT", "80.5"],
    ["JOBWATCH_POOL_SIZE", "0"],
    ["JOBWATCH_MAX_PAYLOAD_BYTES", "-1"],
    ["JOBWATCH_MAX_PAGE_SIZE", "5"],
    ["JOBWATCH_SCHEMA", "Robert'); DROP TABLE"],
    ["JOBWATCH_SCHEMA", ""],
    ["DATABASE_URL", "mysql://localhost/db"],
    ["JOBWATCH_SHUTDOWN_TIMEOUT", "soonish"],
    ["HOST", "   "],
    ["JOBWATCH_HEARTBEAT_INTERVAL", "0s"],
    ["JOBWATCH_REAPER", "maybe"],
    ["JOBWATCH_MAX_WAIT", "forever"],
    ["JOBWATCH_MAX_BODY_BYTES", "12"],
    ["JOBWATCH_CORS_ORIGINS", "app.example.com"],
    ["JOBWATCH_CORS_ORIGINS", "https://a.example.com/path"]
  ]
  for (const [name, value] of bad) {
    it.effect(`a bad ${name} (${JSON.stringify(value)}) fails naming the variable`, () =>
      Effect.gen(function*() {
        const message = yield* failureOf({ [name]: value })
        assert.include(message, name)
      }))
  }

  it.effect("layer(partial) for embedders validates too, naming the field", () =>
    Effect.gen(function*() {
      const config = yield* JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer({ port: 0, shutdownTimeout: "1 second" })))
      assert.strictEqual(config.port, 0)
      assert.strictEqual(Duration.toMillis(config.shutdownTimeout), 1000)
      const result = yield* Effect.either(
        JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer({ maxBatchSize: 0 })))
      )
      assert.isTrue(Either.isLeft(result) && String(result.left).includes("maxBatchSize"))
    }))

  it.effect("the hardening settings: log level, backoff cap, listener check, per-user limits, connection limits", () =>
    Effect.gen(function*() {
      const defaults = yield* fromEnv({})
      assert.strictEqual(defaults.logLevel, "info")
      assert.deepStrictEqual(defaults.maxStreamsPerUser, Option.some(100))
      assert.deepStrictEqual(defaults.rateLimit, Option.some(50))
      assert.strictEqual(defaults.rateLimitBurst, 200)
      const config = yield* fromEnv({
        JOBWATCH_LOG_LEVEL: "WARN",
        JOBWATCH_RETRY_MAX_BACKOFF: "30s",
        JOBWATCH_LISTENER_CHECK_INTERVAL: "2s",
        JOBWATCH_MAX_STREAMS_PER_USER: "off",
        JOBWATCH_RATE_LIMIT: "20/s",
        JOBWATCH_RATE_LIMIT_BURST: "40",
        JOBWATCH_MAX_CONNECTIONS: "500",
        JOBWATCH_HEADERS_TIMEOUT: "10s",
        JOBWATCH_BODY_TIMEOUT: "1m"
      })
      assert.strictEqual(config.logLevel, "warn")
      assert.strictEqual(Duration.toMillis(config.retryMaxBackoff), 30_000)
      assert.strictEqual(Duration.toMillis(config.listenerCheckInterval), 2000)
      assert.isTrue(Option.isNone(config.maxStreamsPerUser))
      assert.deepStrictEqual(config.rateLimit, Option.some(20))
      assert.strictEqual(config.rateLimitBurst, 40)
      assert.strictEqual(config.maxConnections, 500)
      assert.strictEqual(Duration.toMillis(config.headersTimeout), 10_000)
      assert.strictEqual(Duration.toMillis(config.bodyTimeout), 60_000)
      assert.isTrue(Option.isNone((yield* fromEnv({ JOBWATCH_RATE_LIMIT: "off" })).rateLimit))
      for (const [name, value] of [
        ["JOBWATCH_LOG_LEVEL", "loud"],
        ["JOBWATCH_RATE_LIMIT", "fast"],
        ["JOBWATCH_RATE_LIMIT", "0"],
        ["JOBWATCH_MAX_STREAMS_PER_USER", "0"],
        ["JOBWATCH_MAX_CONNECTIONS", "-1"],
        ["JOBWATCH_HEADERS_TIMEOUT", "0s"]
      ] as const) {
        assert.include(yield* failureOf({ [name]: value }), name)
      }
    }))

  it("parseDuration takes DurationInputs and shorthands", () => {
    const ms = (input: unknown) => Option.map(parseDuration(input), Duration.toMillis)
    assert.deepStrictEqual(ms("5s"), Option.some(5000))
    assert.deepStrictEqual(ms("250ms"), Option.some(250))
    assert.deepStrictEqual(ms("2m"), Option.some(120_000))
    assert.deepStrictEqual(ms("5 seconds"), Option.some(5000))
    assert.deepStrictEqual(ms(1500), Option.some(1500))
    assert.deepStrictEqual(ms(Duration.minutes(1)), Option.some(60_000))
    assert.isTrue(Option.isNone(parseDuration("later")))
    assert.isTrue(Option.isNone(parseDuration(-1)))
  })

  it.effect("retention: 7 days by default, off keeps finished jobs, a duration otherwise", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(Option.map((yield* fromEnv({})).retention, Duration.toMillis), Option.some(7 * 86_400_000))
      assert.isTrue(Option.isNone((yield* fromEnv({ JOBWATCH_RETENTION: "off" })).retention))
      assert.deepStrictEqual(
        Option.map((yield* fromEnv({ JOBWATCH_RETENTION: "36h" })).retention, Duration.toMillis),
        Option.some(36 * 3_600_000)
      )
      assert.include(yield* failureOf({ JOBWATCH_RETENTION: "a while" }), "JOBWATCH_RETENTION")
      const embedded = yield* JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer({ retention: null })))
      assert.isTrue(Option.isNone(embedded.retention))
    }))

  it.effect("layer(partial) takes typed values (null for off, Durations, lists, Redacted) and defaults the rest", () =>
    Effect.gen(function*() {
      const fromDefaults = yield* JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer()))
      assert.deepStrictEqual(normalize(fromDefaults), normalize(yield* fromEnv({})))
      assert.deepStrictEqual(normalize(defaults), normalize(fromDefaults))
      const config = yield* JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer({
        databaseUrl: Redacted.make("postgres://h/db"),
        refreshInterval: null,
        maxStreamsPerUser: null,
        rateLimit: 2.5,
        heartbeatInterval: Duration.millis(1500),
        webhookRetrySchedule: ["1 second", 200],
        corsOrigins: ["*"],
        reaper: false,
        logLevel: "debug"
      })))
      assert.strictEqual(Redacted.value(Option.getOrThrow(config.databaseUrl)), "postgres://h/db")
      assert.isTrue(Option.isNone(config.refreshInterval))
      assert.isTrue(Option.isNone(config.maxStreamsPerUser))
      assert.deepStrictEqual(config.rateLimit, Option.some(2.5))
      assert.strictEqual(Duration.toMillis(config.heartbeatInterval), 1500)
      assert.deepStrictEqual(config.webhookRetrySchedule.map(Duration.toMillis), [1000, 200])
      assert.deepStrictEqual(config.corsOrigins, ["*"])
      assert.isFalse(config.reaper)
      assert.strictEqual(config.logLevel, "debug")
      assert.strictEqual(config.port, 8080)
      const bad = yield* Effect.either(JobWatchConfig.pipe(Effect.provide(JobWatchConfig.layer({ heartbeatInterval: 0 }))))
      assert.isTrue(Either.isLeft(bad) && String(bad.left).includes("heartbeatInterval"))
    }))

  it.effect("the README's configuration table documents every variable with its default, and no other", () =>
    Effect.gen(function*() {
      const readme = Fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")
      const rows = new Map<string, string>()
      for (const match of readme.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|/gm)) rows.set(match[1]!, match[2]!.trim())
      const defaults = normalize(yield* fromEnv({}))
      for (const [key, env] of Record.toEntries(envNames)) {
        const documented = rows.get(env)
        if (documented === undefined) return assert.fail(`${env} (${key}) is not in the README's configuration table`)
        const literal = /^`([^`]*)`$/.exec(documented)
        if (literal === null) {
          // "unset", "none": nothing is set by default
          assert.include(["unset", "none"], documented, `${env}: ${documented}`)
          assert.deepStrictEqual(defaults[key], documented === "unset" ? { none: true } : [], env)
        } else {
          const read = normalize(yield* fromEnv({ [env]: literal[1]! }))
          assert.deepStrictEqual(read[key], defaults[key], `${env}: the README says ${documented}`)
        }
      }
      // the rest are read elsewhere (the JWT settings in Auth.ts): a row for a variable no source reads is stale
      const sources = Fs.readdirSync(new URL("../src/", import.meta.url), { recursive: true, encoding: "utf8" })
        .filter((file) => file.endsWith(".ts"))
        .map((file) => Fs.readFileSync(new URL(`../src/${file}`, import.meta.url), "utf8"))
        .join("\n")
      const known = new Set(Object.values(envNames))
      for (const env of rows.keys()) {
        if (!known.has(env)) assert.include(sources, `"${env}"`, `the README documents ${env}, which nothing reads`)
      }
    }))
})

/** A configuration as plain data, to compare: durations in milliseconds, options and secrets spelled out. */
const normalize = (config: JobWatchConfigShape): { readonly [key: string]: unknown } => Record.map(config, plain)

const plain = (value: unknown): unknown => {
  if (Duration.isDuration(value)) return Duration.toMillis(value)
  if (Redacted.isRedacted(value)) return Redacted.value(value)
  if (Option.isOption(value)) return Option.match(value, { onNone: () => ({ none: true }), onSome: (v) => ({ some: plain(v) }) })
  if (Array.isArray(value)) return value.map(plain)
  return value
}
