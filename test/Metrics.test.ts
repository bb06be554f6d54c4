import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Ref } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import { Metrics } from "../src/Metrics.js"
import { GaugesRepo } from "../src/Metrics/GaugesRepo.js"
import { initialReaperState, Reaper } from "../src/Workers/Reaper.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, secret, serverLayer, token } from "./support/http.js"
import { receiver } from "./support/receiver.js"
import { openSse, request, startService, tempDir } from "./support/service.js"
import { databaseUrl, freshSchema } from "./support/TestDb.js"

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The samples of a Prometheus text exposition (the comment lines left out). */
const parse = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!
    return { name: m[1]!, labels, value: m[3] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[3]) }
  })

/** The value of the sample `name` whose labels include `labels`, if there is one. */
const valueOf = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

const families = (samples: ReadonlyArray<Sample>) => new Set(samples.map((s) => s.name))

const schema = freshSchema()
// the reaper on: this process is the cluster's reaper (it starts first); webhooks to loopback for the callback
const TestLayer = serverLayer({ schema, reaper: true, webhookAllowPrivate: true, webhookTimeout: "5 seconds" })

/** Every label name a jobwatch family may carry (the histograms' `le`, the Effect runtime's `time_unit`). */
const allowedLabels = new Set(["queue", "status", "channel", "outcome", "state", "le", "time_unit"])

layer(TestLayer, { excludeTestServices: true })("GET /metrics", (it) => {
  it.scoped("after a workload: the job, queue, worker, stream, webhook, listener, pool and process families, by queue and " +
    "never by job or user; the database gauges from the reaper's process alone; 401, 403, and public with the setting", () =>
    Effect.gen(function*() {
      const reaper = yield* Reaper
      for (let i = 0; i < 200 && !(yield* reaper.state).leader; i++) yield* Effect.sleep("25 millis")
      assert.isTrue((yield* reaper.state).leader, "this process is the reaper")
      const admin = yield* token("ops", ["admin"])
      const alice = yield* token("alice")
      const worker = yield* token("box", ["worker"])
      const scrape = raw("GET", "/metrics", { token: admin }).pipe(Effect.map((r) => {
        assert.strictEqual(r.status, 200, String(r.body))
        assert.match(r.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/)
        return { text: String(r.body), samples: parse(String(r.body)) }
      }))
      /** Scrapes until `holds` (bounded: 10 s). */
      const scrapeUntil = (holds: (samples: ReadonlyArray<Sample>) => boolean, what: string) =>
        Effect.gen(function*() {
          for (let i = 0; i < 200; i++) {
            const got = yield* scrape
            if (holds(got.samples)) return got
            yield* Effect.sleep("50 millis")
          }
          return assert.fail(`no ${what} in 10 s`)
        })

      // who may scrape
      assert.strictEqual((yield* raw("GET", "/metrics")).status, 401)
      assert.strictEqual((yield* raw("GET", "/metrics", { token: "not.a.token" })).status, 401)
      const forbidden = yield* raw("GET", "/metrics", { token: alice })
      assert.strictEqual(forbidden.status, 403)
      assert.deepInclude(forbidden.body, { _tag: "Forbidden", required: "admin" })
      assert.strictEqual((yield* raw("GET", "/metrics", { token: worker })).status, 403)

      // a second service on the same database: it campaigns for the reaper's lock, which this process holds
      const dataDir = yield* tempDir
      const other = yield* startService({
        DATABASE_URL: databaseUrl(),
        JOBWATCH_SCHEMA: schema,
        JOBWATCH_JWT_SECRET: new TextDecoder().decode(secret),
        JOBWATCH_DATA_DIR: dataDir,
        JOBWATCH_METRICS_PUBLIC: "true",
        JOBWATCH_WEBHOOKS: "false",
        PORT: "0",
        HOST: "127.0.0.1"
      })
      const otherUrl = (yield* other.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!

      // the workload: seven jobs of one queue, alice's
      const queue = uniqueQueue("metrics")
      const hook = yield* receiver()
      const enqueue = (body: Record<string, unknown>) =>
        Effect.map(raw("POST", "/v1/jobs", { token: alice, json: { name: "m", queue, ...body } }), (r) => {
          assert.strictEqual(r.status, 201, JSON.stringify(r.body))
          return r.body.id as string
        })
      const a = yield* enqueue({ webhookUrl: hook.url })
      const b = yield* enqueue({ maxAttempts: 1 })
      const c = yield* enqueue({ maxAttempts: 2, backoff: { delaySeconds: 3600 } })
      const g = yield* enqueue({})
      const d = yield* enqueue({})
      const f = yield* enqueue({})
      const e = yield* enqueue({ delaySeconds: 3600 })
      const ids = [a, b, c, d, e, f, g]
      const claimed = yield* raw("POST", "/v1/workers/box/claim", { token: worker, json: { queues: [queue], limit: 4 } })
      assert.deepStrictEqual(claimed.body.jobs.map((j: { id: string }) => j.id), [a, b, c, g])

      // a waiter (a long-poll on b) and an SSE stream (f's) held open here
      const poll = yield* Effect.fork(raw("GET", `/v1/jobs/${b}`, { token: alice, headers: { prefer: "wait=30" } }))
      const server = yield* HttpServer.HttpServer
      const base = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
      const stream = yield* openSse(`${base}/v1/jobs/${f}/events`, { authorization: `Bearer ${alice}` })
      assert.strictEqual(yield* Deferred.await(stream.opened), 200)
      yield* scrapeUntil(
        (s) => valueOf(s, "jobwatch_open_streams", { channel: "long_poll" }) === 1 && valueOf(s, "jobwatch_open_streams", { channel: "sse" }) === 1,
        "long-poll and SSE stream counted"
      )

      // b fails for good in the other process: the waiter here learns it by the doorbell
      const failed = yield* request(`${otherUrl}/v1/jobs/${b}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${worker}`, "content-type": "application/json" },
        body: JSON.stringify({ workerId: "box", status: "failed", error: { message: "no", retryable: false } })
      })
      assert.strictEqual(failed.status, 200, failed.text)
      const answered = yield* Fiber.join(poll)
      assert.strictEqual(answered.body.status, "failed")
      // a completes (its callback is delivered), c's attempt fails and is retried in an hour, d is canceled
      const patch = (id: string, body: Record<string, unknown>) =>
        Effect.map(raw("PATCH", `/v1/jobs/${id}`, { token: worker, json: { workerId: "box", ...body } }), (r) =>
          assert.strictEqual(r.status, 200, JSON.stringify(r.body)))
      yield* patch(a, { status: "completed", result: { ok: true } })
      yield* patch(c, { status: "failed", error: { message: "again" } })
      assert.strictEqual((yield* raw("POST", `/v1/jobs/${d}/cancel`, { token: alice })).status, 200)
      yield* hook.until(1)

      // the database gauges, as the database has them (the reaper's process reports them)
      const sql = yield* SqlClient.SqlClient
      const { schema: configured } = yield* JobWatchConfig
      const [truth] = yield* sql.unsafe<{ pending: number; scheduled: number; running: number }>(
        `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
           count(*) FILTER (WHERE status = 'scheduled')::int AS scheduled,
           count(*) FILTER (WHERE status IN ('claimed', 'running'))::int AS running
         FROM "${configured}".jobs WHERE queue = $1`,
        [queue]
      )
      assert.deepStrictEqual(truth, { pending: 1, scheduled: 2, running: 1 })
      // a database sample serves the scrapes of the next second: scraped until one read after these changes
      const here = yield* scrapeUntil(
        (s) =>
          valueOf(s, "jobwatch_webhook_attempts_total", { outcome: "2xx" }) === 1 &&
          valueOf(s, "jobwatch_open_streams", { channel: "long_poll" }) === 0 &&
          valueOf(s, "jobwatch_queue_depth", { queue, status: "pending" }) === truth!.pending &&
          valueOf(s, "jobwatch_queue_depth", { queue, status: "scheduled" }) === truth!.scheduled,
        "webhook attempt counted, long-poll ended, database gauges of now"
      )
      const s = here.samples
      const q = { queue }
      assert.strictEqual(valueOf(s, "jobwatch_jobs_enqueued_total", q), 7)
      assert.strictEqual(valueOf(s, "jobwatch_jobs_started_total", q), 4)
      assert.strictEqual(valueOf(s, "jobwatch_jobs_completed_total", q), 1)
      assert.strictEqual(valueOf(s, "jobwatch_jobs_retried_total", q), 1)
      assert.strictEqual(valueOf(s, "jobwatch_jobs_canceled_total", q), 1)
      // b failed in the other process: counted there
      assert.isUndefined(valueOf(s, "jobwatch_jobs_failed_total", q))
      assert.strictEqual(valueOf(s, "jobwatch_job_wait_seconds_count", q), 4)
      assert.strictEqual(valueOf(s, "jobwatch_job_wait_seconds_bucket", { queue, le: "+Inf" }), 4)
      assert.isAtLeast(valueOf(s, "jobwatch_job_run_seconds_count", q) ?? 0, 1)
      assert.isAtLeast(valueOf(s, "jobwatch_notify_to_resolve_seconds_count") ?? 0, 1)
      assert.strictEqual(valueOf(s, "jobwatch_listener_up"), 1)
      assert.isDefined(valueOf(s, "jobwatch_leases_expired_total"))
      assert.isDefined(valueOf(s, "jobwatch_jobs_timed_out_total"))
      assert.strictEqual(valueOf(s, "jobwatch_open_streams", { channel: "sse" }), 1)
      assert.isAtLeast(valueOf(s, "jobwatch_webhook_delivery_latency_seconds_count") ?? 0, 1)
      for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes"]) {
        assert.isAbove(valueOf(s, name) ?? 0, 0, name)
      }
      assert.isAtLeast(valueOf(s, "nodejs_eventloop_lag_p99_seconds") ?? -1, 0)

      // the database gauges the reaper's process reports
      assert.strictEqual(valueOf(s, "jobwatch_queue_depth", { queue, status: "pending" }), truth!.pending)
      assert.strictEqual(valueOf(s, "jobwatch_queue_depth", { queue, status: "scheduled" }), truth!.scheduled)
      assert.strictEqual(valueOf(s, "jobwatch_jobs_running", q), truth!.running)
      assert.isAbove(valueOf(s, "jobwatch_queue_oldest_pending_age_seconds", q) ?? 0, 0)
      assert.isAtLeast(valueOf(s, "jobwatch_workers_live") ?? 0, 1)
      assert.strictEqual(valueOf(s, "jobwatch_webhook_deliveries_pending"), 0)
      assert.strictEqual(valueOf(s, "jobwatch_webhook_endpoints_disabled"), 0)

      // never a job id or a user as a label: only the known label names, no id and no owner anywhere
      for (const sample of s) {
        for (const key of Object.keys(sample.labels)) {
          if (sample.name !== "target_info") assert.isTrue(allowedLabels.has(key), `${sample.name} has label ${key}`)
        }
      }
      for (const id of ids) assert.notInclude(here.text, id)
      assert.notInclude(here.text, "alice")

      // the other process: public (no token), its own counters, and none of the database gauges
      const there = yield* request(`${otherUrl}/metrics`)
      assert.strictEqual(there.status, 200, there.text)
      const o = parse(there.text)
      assert.strictEqual(valueOf(o, "jobwatch_jobs_failed_total", q), 1)
      assert.isUndefined(valueOf(o, "jobwatch_jobs_enqueued_total", q))
      const database = ["jobwatch_queue_depth", "jobwatch_queue_oldest_pending_age_seconds", "jobwatch_jobs_running",
        "jobwatch_workers_live", "jobwatch_webhook_deliveries_pending", "jobwatch_webhook_oldest_pending_age_seconds",
        "jobwatch_webhook_endpoints_disabled"]
      for (const name of database) {
        assert.isTrue(families(s).has(name), `${name} here`)
        assert.isFalse(families(o).has(name), `${name} not in the other process`)
      }
      // so a sum over the two processes is the database's figure, not a multiple of it
      const sum = (name: string, labels: Record<string, string>) => (valueOf(s, name, labels) ?? 0) + (valueOf(o, name, labels) ?? 0)
      assert.strictEqual(sum("jobwatch_queue_depth", { queue, status: "pending" }), truth!.pending)
      assert.strictEqual(sum("jobwatch_jobs_running", q), truth!.running)
      assert.strictEqual(valueOf(o, "jobwatch_listener_up"), 1)
      // the service's own pool (`npm start`'s; this test's pool is a plain PgClient layer's)
      assert.isAtLeast(valueOf(o, "jobwatch_db_pool_connections", { state: "idle" }) ?? -1, 0)
      assert.strictEqual(valueOf(o, "jobwatch_db_pool_waiting"), 0)
    }), { timeout: 120_000 })

  it.scoped("a process that is not, or no longer, the reaper leaves the database gauges out rather than report them stale", () =>
    Effect.gen(function*() {
      const leader = yield* Ref.make(true)
      const state = Effect.map(Ref.get(leader), (isLeader) => ({ ...initialReaperState, leader: isLeader }))
      const reaper = Layer.succeed(Reaper, Reaper.make({ state, runOnce: Effect.succeed(0) }))
      const queue = uniqueQueue("handover")
      yield* (yield* Jobs).enqueue({ name: "m", queue })
      yield* Effect.gen(function*() {
        const metrics = yield* Metrics
        const depth = Effect.map(metrics.scrape, (text) =>
          valueOf(parse(text), "jobwatch_queue_depth", { queue, status: "pending" }))
        assert.strictEqual(yield* depth, 1)
        // the lock lost (another process reaps now): the gauges this process set are no longer reported
        yield* Ref.set(leader, false)
        const text = yield* metrics.scrape
        assert.isUndefined(valueOf(parse(text), "jobwatch_queue_depth", { queue, status: "pending" }))
        for (const name of ["jobwatch_queue_depth", "jobwatch_workers_live", "jobwatch_webhook_deliveries_pending"]) {
          assert.isFalse(families(parse(text)).has(name), name)
        }
      }).pipe(Effect.provide(Metrics.DefaultWithoutDependencies.pipe(Layer.provide([GaugesRepo.Default, reaper]))))
    }), { timeout: 30_000 })
})
