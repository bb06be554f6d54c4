// `npm run bench -- amqp`: the event bus relay (issue 20) against the machine's RabbitMQ (JOBWATCH_BENCH_AMQP_URL,
// default amqp://guest:guest@127.0.0.1:5672), on exchanges of this run (deleted at the end). (1) Throughput: 10,000
// jobs run to completion while no relay runs (30,000 events: enqueued, claimed straight into running, completed), then a relay
// starts from the cursor before them: events/s from its start to the consumer having the last one (every publish
// confirmed). (2) Lag: a lifecycle of 10,000 jobs paced at 1,000 jobs/s with the relay running: from each event's
// timestamp (its transaction's, on the database's clock, the same machine's) to its arrival at a consumer bound
// with `#`; p50/p99. Every wait is bounded.
import * as amqp from "amqplib"
import { Context, Duration, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { AmqpRelay, declareTopology } from "../../src/Amqp/Relay.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Repos } from "../support/repos.js"
import { SqlClient } from "@effect/sql"
import { monotonicMs, ms, summarize } from "./stats.js"

export const brokerUrl = process.env.JOBWATCH_BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672"
const suffix = randomBytes(4).toString("hex")
/** The exchanges of this run (the bench's settings name them: see main.ts). */
export const benchExchanges = { exchange: `bench.events.jobs.${suffix}`, erpExchange: `bench.erp.outbound.${suffix}` }
const jobsPerRun = 10_000

/** A consumer of everything on the run's topic exchange: arrival times (ms, wall clock) by message id. */
const consumer = Effect.acquireRelease(
  Effect.promise(async () => {
    const connection = await amqp.connect(brokerUrl)
    const channel = await connection.createChannel()
    await declareTopology(channel, { ...benchExchanges, allProgress: false })
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true })
    await channel.bindQueue(queue, benchExchanges.exchange, "#")
    const arrived = new Map<string, { at: number; timestamp: number }>()
    await channel.consume(queue, (message) => {
      if (message === null) return
      const body = JSON.parse(message.content.toString()) as { timestamp: string }
      arrived.set(String(message.properties.messageId), { at: Date.now(), timestamp: Date.parse(body.timestamp) })
    }, { noAck: true })
    return { connection, channel, arrived }
  }),
  ({ channel, connection }) =>
    Effect.promise(async () => {
      await channel.deleteExchange(benchExchanges.erpExchange).catch(() => undefined)
      await channel.deleteExchange(benchExchanges.exchange).catch(() => undefined)
      await connection.close().catch(() => undefined)
    })
)

/** Runs `n` jobs to completion through the repositories, `batch` at a time, pacing each batch to `perSecond`. */
const lifecycle = (n: number, batch: number, perSecond: number | undefined) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const queue = `amqp-${randomBytes(3).toString("hex")}`
    const started = monotonicMs()
    for (let done = 0; done < n; done += batch) {
      yield* jobs.enqueueBatch(Array.from({ length: batch }, () => ({ name: "bench", queue, owner: "bench" })))
      const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: batch, leaseMs: 600_000, start: true })
      yield* repo.completeMany("bench", claimed.map((job) => ({ id: job.id as JobId, resultJson: "true", message: null })))
      if (perSecond !== undefined) {
        const due = started + ((done + batch) / perSecond) * 1000
        const wait = due - monotonicMs()
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      }
    }
  })

/** Waits (up to `seconds`) until the consumer has `count` messages; answers when (ms, monotonic). */
const untilArrived = (arrived: Map<string, unknown>, count: number, seconds: number) =>
  Effect.gen(function*() {
    const deadline = monotonicMs() + seconds * 1000
    while (arrived.size < count && monotonicMs() < deadline) yield* Effect.sleep(Duration.millis(5))
    return monotonicMs()
  })

export const amqpBench = (_url: string) =>
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const repo = yield* Repos
    const sql = yield* SqlClient.SqlClient
    const { arrived } = yield* consumer

    // (1) a backlog, then a relay from the cursor before it
    const before = yield* repo.streamNow
    yield* lifecycle(jobsPerRun, 500, undefined)
    yield* sql.unsafe(
      `INSERT INTO "${config.schema}".amqp_relay (id, tx, job_id, version) VALUES (true, $1::xid8, $2::uuid, $3)
       ON CONFLICT (id) DO UPDATE SET tx = EXCLUDED.tx, job_id = EXCLUDED.job_id, version = EXCLUDED.version`,
      [before.tx, before.jobId, before.version]
    )
    const eventCount = Effect.map(
      sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM "${config.schema}".job_events WHERE type <> 'job.progress'`),
      (rows) => rows[0]!.n
    )
    const backlog = yield* eventCount
    const relayStart = monotonicMs()
    const context = yield* Layer.build(Layer.fresh(AmqpRelay.Default).pipe(
      Layer.provide(Layer.succeed(JobWatchConfig, { ...config, amqpRelay: true }))
    ))
    const relay = Context.get(context, AmqpRelay)
    const drained = yield* untilArrived(arrived, backlog, 120)
    const rate = arrived.size / ((drained - relayStart) / 1000)
    console.log(
      `  throughput: a backlog of ${backlog} events (${jobsPerRun} jobs) published and confirmed in ` +
        `${ms(drained - relayStart)}: ${Math.round(rate)} events/s (target ≥ 5,000)` +
        (arrived.size < backlog ? `; only ${arrived.size} arrived in 120 s` : "")
    )

    // (2) the lag behind a paced lifecycle, the relay running
    arrived.clear()
    const paced = monotonicMs()
    yield* lifecycle(jobsPerRun, 50, 1000)
    const pacedMs = monotonicMs() - paced
    yield* untilArrived(arrived, (yield* eventCount) - backlog, 60)
    const lags = [...arrived.values()].map((m) => Math.max(0, m.at - m.timestamp))
    const lag = summarize(lags)
    console.log(
      `  lag behind a lifecycle of ${jobsPerRun} jobs at ${Math.round(jobsPerRun / (pacedMs / 1000))} jobs/s: ` +
        `p50 ${ms(lag.p50)}, p99 ${ms(lag.p99)}, max ${ms(lag.max)} (n=${lag.n}; target p99 ≤ 500 ms at 1,000 jobs/s)`
    )
    const stats = yield* relay.stats
    console.log(`  relay: ${stats.published} published in ${stats.batches} confirmed batches, ${stats.returned} returned`)
  })
