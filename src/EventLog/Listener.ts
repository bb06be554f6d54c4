import { PgClient } from "@effect/sql-pg"
import {
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Metric,
  Option,
  Redacted,
  Ref,
  Stream,
  SubscriptionRef
} from "effect"
import pg from "pg"
import { JobWatchConfig } from "../Config.js"
import { makeStreak } from "../internal/retry.js"

/** The channels besides the doorbell, each `<schema>.<name>` (sql/0004, sql/0005). */
const handledChannels = ["outcome", "ready", "cancel", "webhooks"] as const
/**
 * What `on` can follow: those channels, the doorbell, and `reconcile`: every (re)connect, after which whatever was
 * missed while away must be re-read.
 */
export type HandledChannel = typeof handledChannels[number] | "doorbell" | "reconcile"

/** The listening connection's health, readable by `/ready` and metrics. */
export interface ListenerState {
  readonly connected: boolean
  /** Since when it has been connected (or down). */
  readonly since: Date
  readonly reconnects: number
  /** Failed attempts since the last successful connect (0 while connected). */
  readonly failures: number
  readonly lastError: Option.Option<string>
}

export class ListenerError extends Data.TaggedError("ListenerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** The listener stayed down longer than `shutdownOnListenerFailure`. */
export class ListenerFailed extends Data.TaggedError("ListenerFailed")<{
  readonly message: string
  readonly downFor: Duration.Duration
}> {}

const reconnectsTotal = Metric.counter("jobwatch_listener_reconnects", {
  description: "LISTEN connection (re)connects after a failure",
  incremental: true
})
const listenerUp = Metric.gauge("jobwatch_listener_up", { description: "1 while the LISTEN connection is up, else 0" })

/** `pg.Client` options for the pool's database, from the `PgClient`'s configuration. */
export const clientConfig = (config: PgClient.PgClientConfig, applicationName = "jobwatch-listener"): pg.ClientConfig => ({
  ...(config.url !== undefined ? { connectionString: Redacted.value(config.url) } : {}),
  ...(config.host !== undefined ? { host: config.host } : {}),
  ...(config.port !== undefined ? { port: config.port } : {}),
  ...(config.database !== undefined ? { database: config.database } : {}),
  ...(config.username !== undefined ? { user: config.username } : {}),
  ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {}),
  ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
  application_name: applicationName,
  connectionTimeoutMillis: 10_000,
  // TCP keepalive after seconds of silence, not the OS's 2 hours
  keepAlive: true,
  keepAliveInitialDelayMillis: 5_000
})

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * The liveness check runs on the real clock whatever clock the app's logic uses: it judges a real socket, and a
 * test's clock jumping ahead must not declare a healthy connection dead.
 */
const liveClock = Clock.make()

/** Closes a client: politely (bounded) when the scope was closed, at once when the connection is dead. */
const close = (client: pg.Client, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Exit.isInterrupted(exit)
    ? Effect.promise(() => client.end().catch(() => undefined)).pipe(
      Effect.timeoutOption(Duration.seconds(1)),
      Effect.withClock(liveClock),
      Effect.ensuring(Effect.sync(() => void client.connection.stream.destroy())),
      Effect.asVoid
    )
    // a frozen peer never answers the terminate message: end() would wait forever
    : Effect.sync(() => void client.connection.stream.destroy())

/**
 * Makes the process's one LISTEN connection, on a dedicated `pg.Client` (sql-pg's `listen` hangs silently when its
 * connection dies). It fails on the client's `error`/`end` and when a check (a query every `listenerCheckInterval`)
 * goes unanswered for that long, so a frozen peer counts as dead too; it reconnects with an exponential, jittered
 * backoff capped at `listenerMaxBackoff`, logging the first failure of a streak, then a line per cap, then the
 * recovery; and it calls the `reconcile` handlers after every (re)connect so that whatever was missed while away is
 * re-read.
 */
export const make = (connection: pg.ClientConfig) =>
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const channel = `${config.schema}.doorbell`
    // channels whose payloads go straight to handlers, synchronously in the connection's notification callback
    const handlers: Record<HandledChannel, Set<(payload: string) => void>> = {
      outcome: new Set(),
      ready: new Set(),
      cancel: new Set(),
      webhooks: new Set(),
      doorbell: new Set(),
      reconcile: new Set()
    }
    const handled = new Map<string, Set<(payload: string) => void>>([
      [channel, handlers.doorbell],
      ...handledChannels.map((name) => [`${config.schema}.${name}`, handlers[name]] as const)
    ])
    const started = new Date(yield* Clock.currentTimeMillis)
    const state = yield* SubscriptionRef.make<ListenerState>({
      connected: false,
      since: started,
      reconnects: 0,
      failures: 0,
      lastError: Option.none()
    })
    const fatal = yield* Deferred.make<never, ListenerFailed>()
    /** Set by tests and diagnostics: the backend pid of the current connection. */
    const backendPid = yield* Ref.make(Option.none<number>())

    const checkMs = Duration.toMillis(config.listenerCheckInterval)
    const settings: pg.ClientConfig = {
      ...connection,
      keepAlive: true,
      keepAliveInitialDelayMillis: connection.keepAliveInitialDelayMillis ?? Math.max(1000, checkMs)
    }

    /** A query on the connection that must answer within `ms` (real time), or the connection counts as dead. */
    const bounded = <A>(client: pg.Client, what: string, ms: number, run: (client: pg.Client) => Promise<A>) =>
      Effect.tryPromise({
        try: () => run(client),
        catch: (cause) => new ListenerError({ message: `${what}: ${describe(cause)}`, cause })
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(ms),
          onTimeout: () =>
            new ListenerError({ message: `${what}: no answer within ${Duration.format(Duration.millis(ms))}` })
        }),
        Effect.withClock(liveClock)
      )

    /**
     * One connection's life: connects, LISTENs, calls the reconcile handlers, then checks the connection every
     * `listenerCheckInterval`; fails when the connection dies or a check goes unanswered.
     */
    const session = (onConnected: Effect.Effect<void>) =>
      Effect.gen(function*() {
        const died = yield* Deferred.make<never, ListenerError>()
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const client = new pg.Client(settings)
            // handled right here: waiters resolve without a hop through a queue and a fiber
            client.on("notification", (msg) => {
              const payload = msg.payload ?? ""
              for (const handler of handled.get(msg.channel) ?? []) handler(payload)
            })
            client.on("error", (error) => {
              Deferred.unsafeDone(died, Effect.fail(new ListenerError({ message: describe(error), cause: error })))
            })
            client.on("end", () => {
              Deferred.unsafeDone(died, Effect.fail(new ListenerError({ message: "the LISTEN connection ended" })))
            })
            return client
          }),
          close
        )
        const pid = yield* bounded(client, "cannot LISTEN", Math.max(10_000, checkMs), async (client) => {
          await client.connect()
          for (const name of handled.keys()) await client.query(`LISTEN ${client.escapeIdentifier(name)}`)
          const result = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
          return result.rows[0]?.pid
        })
        yield* Ref.set(backendPid, Option.fromNullable(pid))
        yield* onConnected
        // a frozen peer sends no error and no end: only an unanswered query tells
        const checks = Effect.sleep(Duration.millis(checkMs)).pipe(
          Effect.zipRight(
            bounded(client, "the LISTEN connection did not answer a check", checkMs, (c) => c.query("SELECT 1"))
          ),
          Effect.forever,
          Effect.withClock(liveClock)
        )
        return yield* Effect.raceFirst(Deferred.await(died), checks)
      }).pipe(Effect.scoped)

    const loop = Effect.gen(function*() {
      const streak = yield* makeStreak("the LISTEN connection", { cap: config.listenerMaxBackoff })
      let failures = 0
      let downSince: number | undefined
      while (true) {
        const error = yield* session(
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            if (failures > 0) yield* Metric.increment(reconnectsTotal)
            yield* Metric.set(listenerUp, 1)
            yield* SubscriptionRef.update(state, (s) => ({
              ...s,
              connected: true,
              since: new Date(now),
              reconnects: s.reconnects + (failures > 0 ? 1 : 0),
              failures: 0
            }))
            failures = 0
            downSince = undefined
            yield* streak.succeeded
            for (const handler of handlers.reconcile) handler("")
          })
        ).pipe(Effect.flip)
        const now = yield* Clock.currentTimeMillis
        yield* Metric.set(listenerUp, 0)
        failures++
        downSince ??= now
        yield* SubscriptionRef.update(state, (s) => ({
          ...s,
          connected: false,
          since: s.connected ? new Date(now) : s.since,
          failures,
          lastError: Option.some(error.message)
        }))
        yield* Ref.set(backendPid, Option.none())
        // exponential from 100 ms, capped, jittered; logs the streak's first failure, then a line per cap
        const delay = yield* streak.failed(error)
        if (Option.isSome(config.shutdownOnListenerFailure)) {
          const limit = config.shutdownOnListenerFailure.value
          if (now - downSince >= Duration.toMillis(limit)) {
            const downFor = Duration.millis(now - downSince)
            const failed = new ListenerFailed({
              message: `the LISTEN connection has been down for ${Duration.format(downFor)}: ${error.message}`,
              downFor
            })
            yield* Effect.logError(failed.message)
            yield* Deferred.fail(fatal, failed)
            return
          }
        }
        yield* Effect.sleep(delay)
      }
    })
    yield* Metric.set(listenerUp, 0)
    yield* Effect.addFinalizer(() => Metric.set(listenerUp, 0))
    yield* Effect.forkScoped(loop.pipe(Effect.interruptible))

    return {
      state: state as SubscriptionRef.SubscriptionRef<ListenerState>,
      currentState: SubscriptionRef.get(state),
      /** Fails when the listener gives up (only with `shutdownOnListenerFailure`); never succeeds. */
      awaitFailure: Deferred.await(fatal),
      /**
       * Calls `handler` with every payload of channel `name`, synchronously in the connection's notification
       * callback, until the scope closes: `doorbell` (one per statement that wrote events, or per chunk of it:
       * what changed, with the small terminal outcomes; `parseDoorbell` reads it), `ready` (the queues that just got a
       * pending job, comma-separated, or `*`), `cancel` (ids of jobs whose cancellation was requested, or `*`),
       * `webhooks` (deliveries were added), `outcome` (terminal outcomes, a JSON array: only from processes of an
       * earlier version, whose doorbell named pairs alone), `reconcile` (an empty payload after every (re)connect).
       */
      on: (name: HandledChannel, handler: (payload: string) => void) =>
        Effect.acquireRelease(
          Effect.sync(() => handlers[name].add(handler)),
          () => Effect.sync(() => handlers[name].delete(handler))
        ).pipe(Effect.asVoid),
      /** The backend pid of the current LISTEN connection, if connected. */
      backendPid: Ref.get(backendPid),
      channel
    } as const
  })

/**
 * The process's one LISTEN connection (see `make`), on the database of the `PgClient`.
 */
export class Listener extends Effect.Service<Listener>()("jobwatch/Listener", {
  scoped: Effect.flatMap(PgClient.PgClient, (client) => make(clientConfig(client.config))).pipe(
    Effect.annotateLogs("module", "Listener")
  )
}) {}

/** Waits until the listener is connected (at once when it is). */
export const awaitConnected = (listener: Listener): Effect.Effect<void> =>
  listener.state.changes.pipe(Stream.filter((s) => s.connected), Stream.runHead, Effect.asVoid)
