import { PgClient } from "@effect/sql-pg"
import type { ConfirmChannel } from "amqplib"
import * as amqp from "amqplib"
import { Cause, Clock, Data, Duration, Effect, Exit, Metric, MetricBoundaries, Option, Queue, Random, Redacted } from "effect"
import pg from "pg"
import { JobWatchConfig } from "../Config.js"
import type { StreamPosition } from "../EventLog.js"
import { EventsRepo, Listener } from "../EventLog.js"
import { clientConfig } from "../EventLog/Listener.js"
import { makeStreak } from "../internal/retry.js"
import type { Topology } from "./Message.js"
import { messageOf } from "./Message.js"

export const publishedTotal = Metric.counter("jobwatch_amqp_published", {
  description: "events the relay published and the broker confirmed",
  incremental: true
})
export const relayLagName = "jobwatch_amqp_relay_lag_seconds"
/**
 * How far behind the relay is: the age of the newest event of its last confirmed batch; 0 when it caught up. Only
 * the relay's process reports it (`Metrics`).
 */
export const relayLag = Metric.gauge(relayLagName, {
  description: "age of the newest event the relay had confirmed, when it confirmed it (0 when caught up)"
})
const returnsTotal = Metric.counter("jobwatch_amqp_returns", {
  description: "messages the broker returned as unroutable",
  incremental: true
})
const confirmSeconds = Metric.histogram(
  "jobwatch_amqp_confirm_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  "from a batch's first publish to the broker's confirm of all of it"
)

/** Events read and published per batch; the cursor moves after each batch's confirms. */
const batchSize = 500
/** How long the relay waits for a doorbell before it reads anyway (a missed doorbell costs at most this). */
const idleRead = Duration.seconds(1)
/** How often a follower tries the relay lock. */
const campaignEvery = 1000

class RelayFailed extends Data.TaggedError("RelayFailed")<{ readonly message: string }> {}

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** Declares the exchanges and their binding, idempotently: the topic exchange and the ERP fanout on `job.status.*`. */
export const declareTopology = async (channel: amqp.Channel, topology: Topology) => {
  await channel.assertExchange(topology.exchange, "topic", { durable: true })
  await channel.assertExchange(topology.erpExchange, "fanout", { durable: true })
  await channel.bindExchange(topology.erpExchange, topology.exchange, "job.status.*")
}

/** What the relay did since the process started. */
export interface RelayStats {
  readonly leader: boolean
  /** This process is the relay and has its cursor: every event committed from now on will be published. */
  readonly armed: boolean
  readonly published: number
  /** Messages the broker returned as unroutable (published `mandatory`). */
  readonly returned: number
  readonly batches: number
}

/**
 * The event bus relay: the event log is the outbox. With `JOBWATCH_AMQP_URL` set, one relay per cluster (the
 * process whose dedicated connection holds the relay's advisory lock; the others try every second and take over
 * when it dies) reads the commit-safe stream of all events after its cursor, publishes each event (persistent,
 * `mandatory`, on a confirm channel), waits for the broker's confirms, and only then moves the cursor, which it
 * keeps in PostgreSQL through the lock connection itself (so only the lock's holder writes it). Nothing is lost
 * across crashes of the relay, of jobwatch or of the broker; a message confirmed just before a crash may be
 * published again, with the same `messageId`. A job's events go out in version order (the stream's order). It
 * wakes on the doorbell, and every failure (broker down, lock connection lost) backs off and logs by streak: jobs
 * never wait for it.
 */
export class AmqpRelay extends Effect.Service<AmqpRelay>()("jobwatch/AmqpRelay", {
  dependencies: [EventsRepo.Default, Listener.Default],
  scoped: Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const stats = { leader: false, armed: false, published: 0, returned: 0, batches: 0 }
    const answer = { stats: Effect.sync((): RelayStats => ({ ...stats })) }
    if (Option.isNone(config.amqpUrl) || !config.amqpRelay) return answer
    const url = config.amqpUrl.value
    const pgConfig = clientConfig((yield* PgClient.PgClient).config, "jobwatch-amqp-relay")
    const events = yield* EventsRepo
    const listener = yield* Listener
    const topology: Topology = {
      exchange: config.amqpExchange,
      erpExchange: config.amqpErpExchange,
      allProgress: config.amqpAllProgress
    }
    const table = `"${config.schema}".amqp_relay`
    const lockKey = `${config.schema}.amqp-relay`
    const wake = yield* Queue.sliding<void>(1)
    yield* listener.on("doorbell", () => Queue.unsafeOffer(wake, undefined))
    yield* listener.on("reconcile", () => Queue.unsafeOffer(wake, undefined))
    const streak = yield* makeStreak("the event bus relay", { cap: config.retryMaxBackoff })

    const attempt = <A>(what: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new RelayFailed({ message: `${what}: ${describe(cause)}` }) })

    /** The lock connection: it holds the election's lock and writes the cursor. */
    const lockConnection = Effect.acquireRelease(
      attempt("cannot connect to PostgreSQL", async () => {
        const client = new pg.Client(pgConfig)
        client.on("error", () => undefined)
        await client.connect()
        return client
      }),
      (client) => Effect.sync(() => void client.connection.stream.destroy())
    )

    /** The broker connection and its confirm channel, with the topology declared. */
    const broker = Effect.acquireRelease(
      attempt("cannot reach the broker", async () => {
        const connection = await amqp.connect(Redacted.value(url))
        connection.on("error", () => undefined)
        try {
          const channel: ConfirmChannel = await connection.createConfirmChannel()
          channel.on("error", () => undefined)
          channel.on("return", () => {
            stats.returned++
            returnsTotal.unsafeUpdate(1, [])
          })
          await declareTopology(channel, topology)
          return { connection, channel }
        } catch (error) {
          await connection.close().catch(() => undefined)
          throw error
        }
      }),
      ({ connection }) => Effect.promise(() => connection.close().catch(() => undefined)).pipe(
        Effect.timeoutOption(Duration.seconds(2))
      )
    )

    /** Publishes a batch and waits for every confirm; answers how many messages went out. */
    const publish = (channel: ConfirmChannel, items: Parameters<typeof messageOf>[0][]) =>
      attempt("publishing", async () => {
        const began = performance.now()
        let sent = 0
        for (const item of items) {
          const message = messageOf(item, topology)
          if (message === undefined) continue
          const room = channel.publish(topology.exchange, message.routingKey, message.content, {
            mandatory: true,
            persistent: true,
            messageId: message.messageId,
            type: message.type,
            timestamp: message.timestamp,
            contentType: "application/json",
            headers: message.headers
          })
          sent++
          if (!room) await new Promise<void>((resolve) => channel.once("drain", () => resolve()))
        }
        await channel.waitForConfirms()
        if (sent > 0) confirmSeconds.unsafeUpdate((performance.now() - began) / 1000, [])
        return sent
      })

    /** One term as the relay: publishes after the cursor until interrupted or something fails. */
    const term = (client: pg.Client) =>
      Effect.gen(function*() {
        const { channel } = yield* broker
        const [row] = (yield* attempt("reading the cursor", () =>
          client.query<{ tx: string; job_id: string; version: number }>(
            `SELECT tx::text AS tx, job_id::text AS job_id, version FROM ${table}`
          ))).rows
        let cursor: StreamPosition = row === undefined
          ? yield* events.streamNow
          : { tx: row.tx, jobId: row.job_id, version: row.version }
        const save = (position: StreamPosition) =>
          attempt("saving the cursor", () =>
            client.query(
              `INSERT INTO ${table} (id, tx, job_id, version) VALUES (true, $1::xid8, $2::uuid, $3)
               ON CONFLICT (id) DO UPDATE SET tx = EXCLUDED.tx, job_id = EXCLUDED.job_id, version = EXCLUDED.version,
                 updated_at = now()`,
              [position.tx, position.jobId, position.version]
            ))
        if (row === undefined) yield* save(cursor)
        stats.armed = true
        if (streak.failures() > 0) yield* streak.succeeded
        while (true) {
          const batch = yield* events.tailAfter(cursor, batchSize)
          if (batch.length === 0) {
            yield* Metric.set(relayLag, 0)
            yield* Effect.raceFirst(Queue.take(wake), Effect.sleep(idleRead))
            // the lock connection is alive (a session lock lives as long as it)
            yield* attempt("checking the lock connection", () => client.query("SELECT 1"))
            continue
          }
          const published = yield* publish(channel, [...batch])
          stats.published += published
          const last = batch[batch.length - 1]!
          cursor = last.position
          yield* save(cursor)
          stats.batches++
          yield* Metric.incrementBy(publishedTotal, published)
          const now = yield* Clock.currentTimeMillis
          yield* Metric.set(relayLag, Math.max(0, (now - Number(last.event.timestamp.epochMillis)) / 1000))
        }
      }).pipe(Effect.scoped)

    /** Whether this process said it is the relay since another one last held the lock (said once per streak). */
    let announced = false
    /** One lock connection's life: campaigns every second; while it holds the lock, relays. */
    const session = Effect.gen(function*() {
      const client = yield* lockConnection
      while (true) {
        const { rows } = yield* attempt("trying the relay lock", () =>
          client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked", [lockKey]))
        if (rows[0]?.locked === true) break
        announced = false
        yield* Effect.sleep(Duration.millis(campaignEvery * (0.75 + 0.5 * (yield* Random.next))))
      }
      stats.leader = true
      if (!announced) yield* Effect.logInfo("this process is the event bus relay")
      announced = true
      return yield* Effect.ensuring(term(client), Effect.sync(() => {
        stats.leader = false
        stats.armed = false
      }))
    }).pipe(Effect.scoped)

    yield* Effect.forkScoped(Effect.gen(function*() {
      while (true) {
        const exit = yield* Effect.exit(session)
        if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) return
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : new Error("the relay ended")
        yield* Effect.sleep(yield* streak.failed(error))
      }
    }).pipe(Effect.interruptible))
    return answer
  }).pipe(Effect.annotateLogs("module", "AmqpRelay"))
}) {}
