import { HttpServerError } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, ConfigError, Duration, Effect, Exit, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import * as Auth from "./Auth.js"
import type { JobWatchConfigShape } from "./Config.js"
import { JobWatchConfig } from "./Config.js"
import * as Database from "./Database.js"
import { EmbeddedPostgresError } from "./Database/EmbeddedPostgres.js"
import { describeError } from "./internal/retry.js"
import * as JobWatch from "./JobWatch.js"
import { Listener } from "./EventLog/Listener.js"
import { ensurePortFree, ServerLive } from "./Http/Server.js"
import * as Traces from "./Traces.js"

/**
 * Secure by default: when no key was configured, a secret was generated and kept in the data directory; print an
 * admin token and a worker token (valid 24 hours) to start with. `npm run token` mints more.
 */
const printStarterTokens = Effect.gen(function*() {
  const keys = yield* Auth.JwtKeysTag
  if (!keys.generated || Option.isNone(keys.secret)) return
  const secret = Redacted.value(keys.secret.value)
  const config = yield* JobWatchConfig
  const admin = yield* Auth.mintFor(keys, secret, { sub: "admin", roles: ["admin"], ttlSeconds: 24 * 3600 })
  const worker = yield* Auth.mintFor(keys, secret, { sub: "worker", roles: ["worker"], ttlSeconds: 24 * 3600 })
  // on stderr when the log is JSON lines: stdout stays one JSON object per line
  yield* Effect.sync(() =>
    (config.logFormat === "json" ? process.stderr : process.stdout).write(
      `\nNo JOBWATCH_JWT_SECRET set: tokens are signed with the secret kept in ${Auth.secretPath(config.dataDir)}.\n` +
        `Admin token (24 h):  ${admin}\nWorker token (24 h): ${worker}\n` +
        `More: npm run token -- --sub alice [--role worker] [--ttl 1h]\n\n`
    )
  )
})

/** JSON lines on stdout in place of the readable lines (`runMain`'s pretty logger, or Effect's default one). */
const jsonLines = Logger.withConsoleLog(Logger.jsonLogger)
const jsonLogs = Layer.merge(
  Logger.replace(Logger.prettyLoggerDefault, jsonLines),
  Logger.replace(Logger.defaultLogger, jsonLines)
)

const logLevels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error
} as const

const listenReasons: Record<string, string> = {
  EADDRINUSE: "the address is already in use (another process listens there: stop it or set PORT)",
  EACCES: "permission denied (ports below 1024 need privileges: set PORT)",
  EADDRNOTAVAIL: "the address is not available on this machine (set HOST)"
}

/** The innermost message of an error and its causes. */
const innermost = (error: unknown): string => {
  let current = error
  for (let depth = 0; depth < 5; depth++) {
    const cause = typeof current === "object" && current !== null ? (current as { readonly cause?: unknown }).cause : undefined
    if (typeof cause !== "object" || cause === null || !("message" in cause)) break
    current = cause
  }
  return describeError(current)
}

/** One line for what stopped the start (or the run): never an Effect stack. */
const failureLine = (cause: Cause.Cause<unknown>, config: Option.Option<JobWatchConfigShape>): string => {
  const error = Cause.squash(cause)
  if (error instanceof HttpServerError.ServeError) {
    const e = error.cause as NodeJS.ErrnoException & { readonly address?: string; readonly port?: number }
    const host = e.address ?? Option.match(config, { onNone: () => "", onSome: (c) => c.host })
    const port = e.port ?? Option.match(config, { onNone: () => 0, onSome: (c) => c.port })
    const code = e.code ?? "listen"
    return `${code} ${host}:${port}: ${listenReasons[code] ?? describeError(e)}`
  }
  if (error instanceof SqlError) return `cannot connect to the database: ${innermost(error)}`
  if (ConfigError.isConfigError(error)) return `invalid configuration: ${String(error).replace(/^\(|\)$/g, "")}`
  if (error instanceof EmbeddedPostgresError) return `embedded PostgreSQL: ${error.message}`
  return describeError(cause)
}

/** When the stop began (the first signal, or the end of the run), for the last line. */
let stopping: number | undefined
let shutdownTimeout = Duration.seconds(4)

/**
 * The last resort: once stopping, the process is gone within `JOBWATCH_SHUTDOWN_TIMEOUT` whatever hangs (exit code
 * 0 for a requested stop, 1 for a failure); the embedded PostgreSQL is stopped by its exit hook.
 */
const startWatchdog = (code: number) =>
  Effect.sync(() => {
    stopping ??= Date.now()
    const ms = Duration.toMillis(shutdownTimeout)
    setTimeout(() => {
      process.stderr.write(`jobwatch did not stop within ${Duration.format(shutdownTimeout)}: exiting\n`)
      process.exit(code)
    }, Math.max(0, ms - (Date.now() - stopping))).unref()
  })

// NodeRuntime.runMain interrupts the program on the first SIGINT/SIGTERM (a graceful stop) and then stops
// listening: a second signal (Ctrl-C again) exits at once, its exit hook still stopping the embedded PostgreSQL
const onSignal = (signal: NodeJS.Signals) => {
  if (stopping === undefined) {
    stopping = Date.now()
    return
  }
  process.stderr.write(`jobwatch: ${signal} again: exiting now\n`)
  process.exit(signal === "SIGINT" ? 130 : 143)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

let loaded: Option.Option<JobWatchConfigShape> = Option.none()

// Runs until SIGTERM/SIGINT; with `shutdownOnListenerFailure`, exits non-zero when the LISTEN connection stays down
// too long, for a supervisor to restart the process.
const program = Effect.gen(function*() {
  const config = yield* Effect.provide(JobWatchConfig, JobWatchConfig.layerConfig)
  loaded = Option.some(config)
  shutdownTimeout = config.shutdownTimeout
  const MainLive = ServerLive.pipe(
    Layer.provideMerge(JobWatch.layer),
    Layer.provideMerge(Database.layer),
    // the JWT settings first: a bad one stops the start before the database starts
    Layer.provideMerge(Auth.keysFromEnv),
    Layer.provideMerge(Layer.succeed(JobWatchConfig, config)),
    // with OTEL_EXPORTER_OTLP_ENDPOINT: built first (every layer above gets its tracer) and released last, flushing
    // the spans of the shutdown too within a quarter of the shutdown timeout (at most 5 s); unset: nothing loaded
    Layer.provideMerge(Traces.layerConfig({
      shutdownTimeout: Duration.min(Duration.seconds(5), Duration.times(config.shutdownTimeout, 0.25))
    }))
  )
  yield* Effect.gen(function*() {
    yield* ensurePortFree(config.host, config.port)
    yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(MainLive)
      // released first: whatever follows must fit in the shutdown timeout
      yield* Effect.addFinalizer((exit) =>
        startWatchdog(Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) ? 1 : 0)
      )
      yield* printStarterTokens.pipe(
        Effect.zipRight(Effect.flatMap(Listener, (listener) => listener.awaitFailure)),
        Effect.provide(context)
      )
    }))
  }).pipe(
    Effect.onExit((exit) =>
      stopping === undefined || (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause))
        ? Effect.void
        : Effect.logInfo(`stopped in ${Duration.format(Duration.millis(Date.now() - stopping))}`)
    ),
    Logger.withMinimumLogLevel(logLevels[config.logLevel]),
    // JOBWATCH_LOG_FORMAT=json: one JSON object per line (message, logLevel, timestamp, annotations, spans)
    Effect.provide(config.logFormat === "json" ? jsonLogs : Layer.empty)
  )
}).pipe(
  Effect.tapErrorCause((cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.sync(() => process.stderr.write(`jobwatch: ${failureLine(cause, loaded)}\n`))
  )
)

NodeRuntime.runMain(program, { disableErrorReporting: true })
