import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import * as amqp from "amqplib"
import { Context, Duration, Effect, Layer, Metric } from "effect"
import type { JobWatchConfigInput } from "../src/Config.js"
import { closedPort } from "./support/fixtures.js"
import { capturingLogs, linesMatching } from "./support/logs.js"
import * as Proxy from "./support/proxy.js"
import { repoPath, runNode } from "./support/processes.js"
import { raw, serverLayer } from "./support/http.js"
import { Repos } from "./support/repos.js"
import { SqlClient } from "@effect/sql"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { JobWatchConfig } from "../src/Config.js"
import { AmqpRelay, declareTopology, publishedTotal, relayLag } from "../src/Amqp/Relay.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"
import { eventually } from "./support/workers.js"

/** The machine's RabbitMQ (guest/guest on loopback). */
const brokerUrl = "amqp://guest:guest@127.0.0.1:5672"
/** Exchanges of this run only: other runs on the same broker never see its messages. */
const suffix = randomBytes(4).toString("hex")
const topology = { exchange: `test.events.jobs.${suffix}`, erpExchange: `test.erp.outbound.${suffix}`, allProgress: false }

const relayLayer = (config: JobWatchConfigInput = {}) =>
  JobWatch.layer.pipe(
    Layer.provideMerge(TestDb.layer({
      reaper: false,
      webhooks: false,
      amqpUrl: brokerUrl,
      amqpExchange: topology.exchange,
      amqpErpExchange: topology.erpExchange,
      ...config
    }, { maxConnections: 20 }))
  )

/** Runs `count` jobs of `queue` through start, progress 50 % and completion (even) or failure (odd). */
const rowsCsv = { name: "rows.csv", url: "s3://bucket/rows.csv", contentType: "text/csv", size: 10 }

const runJobs = (queue: string, count: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const refs = yield* jobs.enqueueBatch(Array.from({ length: count }, (_, i) => ({ name: `report-${i}`, queue, owner: "erp" })))
    let done = 0
    while (done < count) {
      const claimed = yield* workers.claim("amqp-worker", { queues: [queue], start: true, limit: 50 })
      yield* Effect.forEach(claimed, (job) =>
        Effect.gen(function*() {
          yield* workers.progress(job.id, { percent: 50, step: "processing", force: true }, { workerId: "amqp-worker" })
          if (Number(job.name.slice("report-".length)) % 2 === 0) {
            yield* workers.complete(job.id, { workerId: "amqp-worker", result: { rows: 3 }, artefacts: [rowsCsv] })
          } else {
            yield* workers.fail(job.id, { workerId: "amqp-worker", code: "bad", error: "it broke", retryable: false })
          }
        }), { concurrency: 10, discard: true })
      done += claimed.length
    }
    return refs
  })

interface Got {
  readonly routingKey: string
  readonly messageId: string
  readonly type: string
  readonly headers: Record<string, unknown>
  readonly body: Record<string, unknown>
}

/** A consumer of an exclusive queue bound to `exchange` with `pattern`, recording every message; closed at the end. */
const consumer = (exchange: string, pattern: string) =>
  Effect.gen(function*() {
    const connection = yield* Effect.acquireRelease(
      Effect.promise(() => amqp.connect(brokerUrl)),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const channel = yield* Effect.promise(() => connection.createChannel())
    yield* Effect.promise(() => declareTopology(channel, topology))
    const { queue } = yield* Effect.promise(() => channel.assertQueue("", { exclusive: true, autoDelete: true }))
    yield* Effect.promise(() => channel.bindQueue(queue, exchange, pattern))
    const got: Array<Got> = []
    yield* Effect.promise(() =>
      channel.consume(queue, (message) => {
        if (message === null) return
        got.push({
          routingKey: message.fields.routingKey,
          messageId: String(message.properties.messageId),
          type: String(message.properties.type),
          headers: message.properties.headers ?? {},
          body: JSON.parse(message.content.toString()) as Record<string, unknown>
        })
      }, { noAck: true })
    )
    return got
  })

/** The first of each `messageId`, in arrival order. */
const dedupe = (got: ReadonlyArray<Got>) => {
  const seen = new Set<string>()
  return got.filter((m) => !seen.has(m.messageId) && seen.add(m.messageId) !== undefined)
}

/** Checks that each job's messages came in version order, each version once. */
const inVersionOrder = (got: ReadonlyArray<Got>) => {
  const last = new Map<string, number>()
  for (const message of got) {
    const job = String(message.body["job_id"])
    const version = Number(message.body["version"])
    assert.isAbove(version, last.get(job) ?? 0, `job ${job}: version ${version} after ${last.get(job)}`)
    last.set(job, version)
  }
}

describe("the event bus relay (RabbitMQ)", () => {
  // the run's exchanges go with it: the broker is the machine's, shared
  afterAll(async () => {
    const connection = await amqp.connect(brokerUrl)
    const channel = await connection.createChannel()
    await channel.deleteExchange(topology.erpExchange)
    await channel.deleteExchange(topology.exchange)
    await connection.close()
  })
  layer(relayLayer(), { excludeTestServices: true, timeout: 120_000 })((it) => {
    it.scoped("500 jobs through start, progress and completion or failure: every event once, in per-job order, the ERP " +
      "fanout only the status changes, with the replaced system's payload", () =>
      Effect.gen(function*() {
        const relay = yield* AmqpRelay
        yield* eventually(relay.stats, (stats) => stats.armed)
        const all = yield* consumer(topology.exchange, "#")
        const erp = yield* consumer(topology.erpExchange, "")
        const queue = uniqueQueue("amqp")
        const count = 500
        const refs = yield* runJobs(queue, count)
        // enqueued, running, 50 %, completed or failed: four events each, three of them status changes
        yield* eventually(
          Effect.sync(() => ({ all: all.length, erp: erp.length })),
          (n) => n.all >= 4 * count && n.erp >= 3 * count,
          60
        )
        assert.strictEqual(new Set(all.map((m) => m.messageId)).size, 4 * count)
        assert.strictEqual(all.length, 4 * count, "a run without faults publishes each event once")
        assert.strictEqual(new Set(erp.map((m) => m.messageId)).size, 3 * count)
        assert.isTrue(erp.every((m) => m.routingKey.startsWith("job.status.")))
        inVersionOrder(all)
        inVersionOrder(erp)
        const ids = new Set<string>(refs.map((ref) => ref.id))
        assert.isTrue(all.every((m) => ids.has(String(m.body["job_id"]))))
        // the payload, the properties and the routing keys
        const completed = all.find((m) => m.routingKey === "job.status.completed")!
        assert.deepInclude(completed.body, {
          event_type: "job.status.changed",
          status: "completed",
          previous_status: "running",
          progress: 100,
          previous_progress: 50,
          attempt: 1,
          queue,
          owner: "erp",
          result: { rows: 3 }
        })
        assert.deepStrictEqual(completed.body["artefacts"], [
          { name: "rows.csv", url: "s3://bucket/rows.csv", content_type: "text/csv", size: 10, checksum: null }
        ])
        assert.strictEqual(completed.messageId, completed.body["event_id"])
        assert.strictEqual(completed.type, "job.status.changed")
        assert.deepStrictEqual(completed.headers, { job_id: completed.body["job_id"], version: completed.body["version"] })
        assert.match(String(completed.body["timestamp"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
        const failed = all.find((m) => m.routingKey === "job.status.failed")!
        assert.deepInclude(failed.body, { status: "failed" })
        assert.deepStrictEqual(failed.body["error"], { code: "bad", message: "it broke" })
        assert.deepStrictEqual(failed.body["artefacts"], [])
        const progress = all.find((m) => m.routingKey === "job.progress")!
        assert.deepInclude(progress.body, { event_type: "job.progress", progress: 50, step: "processing", status: "running" })
        assert.sameMembers(
          [...new Set(all.map((m) => m.routingKey))],
          ["job.status.pending", "job.status.running", "job.progress", "job.status.completed", "job.status.failed"]
        )
        const stats = yield* relay.stats
        assert.strictEqual(stats.returned, 0)
        // the relay's metrics: what it confirmed, and its lag (0 once it caught up)
        // (counted once the batch's confirms are in and its cursor saved: after the consumer may have the messages)
        yield* eventually(Metric.value(publishedTotal), (published) => published.count >= 4 * count)
        yield* eventually(Metric.value(relayLag), (lag) => lag.value === 0)
      }))
  })

  it.scoped("the broker connection cut mid-run (a proxy closes it): jobs go on, the relay reconnects, every event arrives", () =>
    Effect.gen(function*() {
      const proxy = yield* Proxy.makeTo("127.0.0.1", 5672, (port) => `amqp://guest:guest@127.0.0.1:${port}`)
      const context = yield* Layer.build(relayLayer({ amqpUrl: proxy.url, retryMaxBackoff: "1 second" }))
      const relay = Context.get(context, AmqpRelay)
      yield* eventually(relay.stats, (stats) => stats.armed)
      const all = yield* consumer(topology.exchange, "#")
      const queue = uniqueQueue("amqp-cut")
      const count = 200
      const first = yield* Effect.provide(runJobs(queue, count), context)
      yield* proxy.cut()
      const second = yield* Effect.provide(runJobs(`${queue}-b`, count), context)
      yield* proxy.restore()
      const ids = new Set<string>([...first, ...second].map((ref) => ref.id))
      const mine = () => all.filter((m) => ids.has(String(m.body["job_id"])))
      yield* eventually(Effect.sync(() => new Set(mine().map((m) => m.messageId)).size), (n) => n >= 8 * count, 60)
      assert.strictEqual(new Set(mine().map((m) => m.messageId)).size, 8 * count, "no event missing")
      // a duplicate only of a batch published just before the cut (at most one batch of 500)
      assert.isAtMost(mine().length - 8 * count, 500)
    }), { timeout: 120_000 })

  it.scoped("with the broker unreachable, jobs complete as usual and the relay logs its failure once per backoff cap", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const context = yield* Layer.build(relayLayer({ amqpUrl: `amqp://guest:guest@127.0.0.1:${port}`, retryMaxBackoff: "1 second" }))
        const started = Date.now()
        const refs = yield* Effect.provide(runJobs(uniqueQueue("amqp-down"), 20), context)
        assert.lengthOf(refs, 20)
        yield* Effect.sleep(Duration.seconds(3))
        const elapsed = (Date.now() - started) / 1000
        const lines = yield* linesMatching(logs, /event bus relay (failed|still failing)/)
        assert.isAtLeast(lines.length, 1)
        assert.match(lines[0]!, /the event bus relay failed: cannot reach the broker/)
        // one line when the streak starts, then at most one per cap (1 s): not one per attempt (every 100 ms at first)
        assert.isAtMost(lines.length, 2 + Math.ceil(elapsed))
        assert.notInclude(lines.join("\n"), "guest:guest")
        assert.lengthOf(yield* linesMatching(logs, /this process is the event bus relay/), 1)
      })
    ), { timeout: 60_000 })

  it.effect("npm run amqp:init declares the topology idempotently; without JOBWATCH_AMQP_URL it says what to set", () =>
    Effect.gen(function*() {
      const names = { exchange: `test.init.${suffix}`, erp: `test.init-erp.${suffix}` }
      const env = { JOBWATCH_AMQP_URL: brokerUrl, JOBWATCH_AMQP_EXCHANGE: names.exchange, JOBWATCH_AMQP_ERP_EXCHANGE: names.erp }
      for (let run = 0; run < 2; run++) {
        const ran = yield* runNode(repoPath("src/amqpInit.ts"), [], { env, timeoutMs: 30_000 })
        assert.strictEqual(ran.code, 0, ran.stderr)
        assert.include(ran.stdout, `declared ${names.exchange} (topic), ${names.erp} (fanout)`)
      }
      // the exchanges exist with these types (a redeclaration of another type would close the channel)
      const connection = yield* Effect.promise(() => amqp.connect(brokerUrl))
      const channel = yield* Effect.promise(() => connection.createChannel())
      yield* Effect.promise(() => channel.assertExchange(names.exchange, "topic", { durable: true }))
      yield* Effect.promise(() => channel.assertExchange(names.erp, "fanout", { durable: true }))
      yield* Effect.promise(() => channel.deleteExchange(names.erp))
      yield* Effect.promise(() => channel.deleteExchange(names.exchange))
      yield* Effect.promise(() => connection.close())
      const missing = yield* runNode(repoPath("src/amqpInit.ts"), [], { env: { JOBWATCH_AMQP_URL: "" }, timeoutMs: 30_000 })
      assert.strictEqual(missing.code, 1)
      assert.include(missing.stderr, "set JOBWATCH_AMQP_URL")
    }), { timeout: 60_000 })

  it.scoped("the relay's process killed mid-run: another process takes over from the cursor, and every event arrives", () =>
    Effect.gen(function*() {
      // this process does not campaign until the child is gone
      const context = yield* Layer.build(relayLayer({ amqpRelay: false }))
      const { schema } = Context.get(context, JobWatchConfig)
      const child = spawn(process.execPath, [
        "--import",
        "tsx",
        fileURLToPath(new URL("./support/relayChild.ts", import.meta.url)),
        TestDb.databaseUrl(),
        schema,
        brokerUrl,
        topology.exchange,
        topology.erpExchange
      ], { stdio: ["ignore", "pipe", "pipe"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => void child.kill("SIGKILL")))
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      yield* eventually(Effect.sync(() => output), (text) => text.includes("armed"), 60)
      const all = yield* consumer(topology.exchange, "#")
      const queue = uniqueQueue("amqp-kill")
      const count = 150
      const first = yield* Effect.provide(runJobs(queue, count), context)
      child.kill("SIGKILL")
      const second = yield* Effect.provide(runJobs(`${queue}-b`, count), context)
      // the take-over: a relay of this process, campaigning now
      const takeOver = yield* Layer.build(Layer.fresh(AmqpRelay.Default).pipe(
        Layer.provide(Layer.succeed(JobWatchConfig, { ...Context.get(context, JobWatchConfig), amqpRelay: true })),
        Layer.provide(Layer.succeedContext(context))
      ))
      yield* eventually(Context.get(takeOver, AmqpRelay).stats, (stats) => stats.armed, 60)
      const third = yield* Effect.provide(runJobs(`${queue}-c`, count), context)
      const ids = new Set<string>([...first, ...second, ...third].map((ref) => ref.id))
      const mine = () => all.filter((m) => ids.has(String(m.body["job_id"])))
      yield* eventually(Effect.sync(() => new Set(mine().map((m) => m.messageId)).size), (n) => n >= 12 * count, 60)
      assert.strictEqual(new Set(mine().map((m) => m.messageId)).size, 12 * count, "no event missing")
      assert.isAtMost(mine().length - 12 * count, 500, "duplicates only of the batch in flight at the kill")
      inVersionOrder(dedupe(mine()))
    }), { timeout: 120_000 })

  it.scoped("two relays racing: one is elected, and a run without faults publishes every event exactly once", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(relayLayer())
      const second = yield* Layer.build(Layer.fresh(AmqpRelay.Default).pipe(Layer.provide(Layer.succeedContext(context))))
      const relays = [Context.get(context, AmqpRelay), Context.get(second, AmqpRelay)]
      yield* eventually(Effect.forEach(relays, (relay) => relay.stats), (stats) => stats.some((s) => s.armed), 60)
      const all = yield* consumer(topology.exchange, "#")
      const refs = yield* Effect.provide(runJobs(uniqueQueue("amqp-race"), 300), context)
      const ids = new Set<string>(refs.map((ref) => ref.id))
      const mine = () => all.filter((m) => ids.has(String(m.body["job_id"])))
      yield* eventually(Effect.sync(() => mine().length), (n) => n >= 1200, 60)
      // a moment for a second publication, if one were coming
      yield* Effect.sleep(Duration.seconds(1))
      assert.strictEqual(mine().length, 1200)
      assert.strictEqual(new Set(mine().map((m) => m.messageId)).size, 1200)
      const stats = yield* Effect.forEach(relays, (relay) => relay.stats)
      assert.strictEqual(stats.filter((s) => s.leader).length, 1)
    }), { timeout: 120_000 })

  layer(serverLayer({ amqpUrl: brokerUrl, amqpExchange: topology.exchange, amqpErpExchange: topology.erpExchange }), {
    excludeTestServices: true,
    timeout: 60_000
  })((it) => {
    it.scoped("/ready's body tells the relay's lag and whether this process is the relay", () =>
      Effect.gen(function*() {
        const relay = yield* AmqpRelay
        yield* eventually(relay.stats, (stats) => stats.armed)
        yield* runJobs(uniqueQueue("amqp-ready"), 20)
        const ready = yield* eventually(
          raw("GET", "/ready"),
          (answer) => (answer.body as { eventBus?: { lagSeconds: number } }).eventBus?.lagSeconds === 0
        )
        assert.strictEqual(ready.status, 200)
        assert.deepStrictEqual((ready.body as { eventBus: unknown }).eventBus, { lagSeconds: 0, relay: true })
      }))
  })

  // a broker that is not there (the discard port, closed on loopback): the relay never starts
  layer(serverLayer({ amqpUrl: "amqp://guest:guest@127.0.0.1:9", amqpExchange: topology.exchange }), {
    excludeTestServices: true,
    timeout: 60_000
  })((it) => {
    it.scoped("/ready with the broker down: still 200, no lag before any relay ran, then the age of what waits", () =>
      Effect.gen(function*() {
        const first = yield* raw("GET", "/ready")
        assert.strictEqual(first.status, 200)
        assert.deepStrictEqual((first.body as { eventBus: unknown }).eventBus, { lagSeconds: null, relay: false })
        // a cursor a relay left, and events after it that wait
        const repo = yield* Repos
        const position = yield* repo.streamNow
        const { schema } = yield* JobWatchConfig
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(
          `INSERT INTO "${schema}".amqp_relay (id, tx, job_id, version) VALUES (true, $1::xid8, $2::uuid, $3)`,
          [position.tx, position.jobId, position.version]
        )
        yield* runJobs(uniqueQueue("amqp-down-ready"), 5)
        const later = yield* raw("GET", "/ready")
        assert.strictEqual(later.status, 200)
        const bus = (later.body as { eventBus: { lagSeconds: number; relay: boolean } }).eventBus
        // the oldest waiting event was committed before this read began
        assert.isAbove(bus.lagSeconds, 0)
        assert.isFalse(bus.relay)
      }))
  })
})
