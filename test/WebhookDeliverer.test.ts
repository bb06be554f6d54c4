import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Logger } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { JobWatchConfigShape } from "../src/Config.js"
import { JobWatchConfig } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import { WebhookDeliverer } from "../src/Webhooks/WebhookDeliverer.js"
import { Webhooks } from "../src/Webhooks.js"
import { runJob, uniqueQueue } from "./support/fixtures.js"
import { receiver } from "./support/receiver.js"
import * as TestDb from "./support/TestDb.js"
import { eventually, testLayer } from "./support/workers.js"

const config = {
  webhooks: false,
  webhookAllowPrivate: true,
  webhookTimeout: "1 second",
  webhookRetrySchedule: ["100 millis", "100 millis", "100 millis"],
  webhookEndpointConcurrency: 48,
  refreshInterval: "1 second"
} as const

/**
 * A deliverer with a pool (and a LISTEN connection) of its own, like another process's, on the test's schema with
 * `overrides`; stopped with the test's scope.
 */
const deliverer = (overrides: Partial<JobWatchConfigShape> = {}, logger?: Logger.Logger<unknown, void>) =>
  Effect.gen(function*() {
    const base = yield* JobWatchConfig
    const layer = WebhookDeliverer.Default.pipe(
      Layer.provide(Layer.merge(
        TestDb.pgLayer(6),
        Layer.succeed(JobWatchConfig, { ...base, webhooks: true, ...overrides })
      ))
    )
    const context = yield* Layer.build(
      logger === undefined ? layer : layer.pipe(Layer.provide(Logger.replace(Logger.defaultLogger, logger)))
    )
    return Context.get(context, WebhookDeliverer)
  })


const query = <A extends object>(text: (schema: string) => string, params: ReadonlyArray<unknown> = []) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    return yield* sql.unsafe<A>(text(schema), params)
  })

/** A deliverer in a child process (`support/delivererChild.ts`), once it runs; SIGKILLed at the latest at the end. */
const childDeliverer = (timeoutMs: number) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const script = fileURLToPath(new URL("./support/delivererChild.ts", import.meta.url))
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", script, TestDb.databaseUrl(), schema, String(timeoutMs)], {
          stdio: ["ignore", "pipe", "inherit"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
    )
    yield* Effect.async<void, Error>((resume) => {
      let out = ""
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes("ready\n")) resume(Effect.void)
      })
      child.on("exit", (code) => resume(Effect.fail(new Error(`the child deliverer exited with ${code}`))))
    }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the child deliverer never ran") }))
    return child
  })

/** No endpoint or delivery of an earlier test is left to compete for the slots. */
const clean = query((s) => `DELETE FROM "${s}".webhook_endpoints; DELETE FROM "${s}".webhook_deliveries`)

describe("webhook deliverer", () => {
  layer(testLayer(config), { excludeTestServices: true, timeout: 120_000 })((it) => {
    it.scoped("three deliverers on separate pools deliver 5 × 2,000 events, every webhook-id exactly once", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const jobs = yield* Jobs
        const target = yield* receiver()
        yield* hooks.create("many-user", { url: target.url, eventTypes: ["all"] })
        // attempts must not stall on a busy machine: a 10 s timeout
        const deliverers = yield* Effect.all(
          Array.from({ length: 3 }, () => deliverer({ webhookTimeout: Duration.seconds(10) }))
        )
        const idle = Effect.gen(function*() {
          const stats = yield* Effect.forEach(deliverers, (d) => d.stats)
          const [pending] = yield* query<{ n: number }>((s) =>
            `SELECT count(*)::int AS n FROM "${s}".webhook_deliveries WHERE status = 'pending'`
          )
          return stats.every((s) => s.inFlight === 0) && pending!.n === 0
        })
        for (let run = 0; run < 5; run++) {
          const t0 = Date.now()
          const before = target.received.length
          const queue = uniqueQueue("many")
          for (let batch = 0; batch < 2; batch++) {
            yield* jobs.enqueueBatch(Array.from({ length: 1000 }, (_, i) => ({ name: `e${i}`, queue, owner: "many-user" })))
          }
          // settled and nothing in flight: no claim is left that could still send anything
          yield* eventually(idle, (done) => done, 60)
          const ids = target.received.slice(before).map((r) => r.headers["webhook-id"]!)
          const seen = new Map<string, number>()
          for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1)
          assert.deepStrictEqual([...seen].filter(([, n]) => n > 1), [], `run ${run + 1}: webhook-ids delivered twice`)
          assert.strictEqual(seen.size, 2000)
          assert.strictEqual(ids.length, 2000)
          console.log(`run ${run + 1}: ${Date.now() - t0} ms`)
        }
        const stats = yield* Effect.forEach(deliverers, (d) => d.stats)
        // all three took part
        assert.isTrue(stats.every((s) => s.succeeded > 0), JSON.stringify(stats))
      }), 120_000)

    it.scoped("a killed deliverer's delivery is taken over when its claim runs out, webhookTimeout + 4 s, not before", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const target = yield* receiver(["hang", { status: 200 }])
        yield* hooks.create("killed-user", { url: target.url, eventTypes: ["completed"] })
        const child = yield* childDeliverer(1000)
        yield* runJob("killed-user")
        const [first] = yield* target.until(1)
        const [held] = yield* query<{ ms: number }>((s) =>
          `SELECT (extract(epoch FROM locked_until - now()) * 1000)::int AS ms FROM "${s}".webhook_deliveries
           WHERE event_id = $1`, [first!.headers["webhook-id"]])
        const heldAt = performance.now()
        // the attempt's 1 s and the margin, not a minute more
        assert.isAtMost(held!.ms, 1000 + 5000)
        // a live deliverer beside it, then the child dies without a word
        yield* deliverer()
        child.kill("SIGKILL")
        const [, second] = yield* target.until(2)
        assert.strictEqual(second!.headers["webhook-id"], first!.headers["webhook-id"])
        // not taken from the child while its claim held
        assert.isAtLeast(second!.at, heldAt + held!.ms - 50)
        console.log(`taken over ${Math.round(second!.at - first!.at)} ms after the killed deliverer's attempt began`)
      }), 120_000)

    it.scoped("eight endpoints that never answer do not hold back a healthy one: one probe each, it gets everything", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const healthy = yield* receiver()
        yield* hooks.create("crowd-user", { url: healthy.url, eventTypes: ["completed"] })
        // no attempt times out during the test: the hung endpoints hold what they get
        yield* deliverer({ webhookTimeout: Duration.seconds(60), webhookEndpointConcurrency: 4 })
        yield* runJob("crowd-user")
        yield* healthy.until(1)
        const hung = yield* Effect.all(Array.from({ length: 8 }, () => receiver(["hang"])))
        for (const h of hung) yield* hooks.create("crowd-user", { url: h.url, eventTypes: ["completed"] })
        // jobs finish one after another, as they do
        for (let i = 0; i < 30; i++) yield* runJob("crowd-user")
        yield* healthy.until(31)
        // each endpoint that never answered got one request (its probe), still open; none got a second
        assert.deepStrictEqual(hung.map((h) => h.received.length), Array(8).fill(1))
        assert.deepStrictEqual(hung.map((h) => h.open()), Array(8).fill(1))
      }), 120_000)

    it.scoped("eight endpoints that answered, then stopped answering, give up their slots when their attempts stall", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const healthy = yield* receiver()
        const hung = yield* Effect.all(Array.from({ length: 8 }, () => receiver([{ status: 200 }, "hang"])))
        for (const r of [healthy, ...hung]) yield* hooks.create("stall-user", { url: r.url, eventTypes: ["completed"] })
        // attempts stall after 2 s and time out after a minute: the endpoints' failures are not known during the test
        yield* deliverer({ webhookTimeout: Duration.seconds(60), webhookEndpointConcurrency: 4 })
        yield* runJob("stall-user")
        yield* Effect.forEach([healthy, ...hung], (r) => r.until(1), { discard: true })
        // all nine answered once; now eight of them hang, with up to 4 requests each: more than the 16 slots
        for (let i = 0; i < 30; i++) yield* runJob("stall-user")
        yield* healthy.until(31)
        const open = hung.map((h) => h.open())
        assert.isTrue(open.every((n) => n >= 1 && n <= 4), JSON.stringify(open))
      }), 120_000)

    it.scoped("endpoints whose last attempts failed: one probe at a time across deliverers, at most half the slots", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const healthy = yield* receiver()
        yield* hooks.create("circuit-user", { url: healthy.url, eventTypes: ["completed"] })
        const hung = yield* Effect.all(Array.from({ length: 8 }, () => receiver(["hang"])))
        const ids: Array<string> = []
        for (const h of hung) ids.push((yield* hooks.create("circuit-user", { url: h.url, eventTypes: ["completed"] })).id)
        // they answered once, then failed their last three attempts: the circuit is open
        yield* query((s) =>
          `UPDATE "${s}".webhook_endpoints SET consecutive_failures = 3, last_success_at = now() - interval '1 hour',
             failing_since = now() WHERE id = ANY($1::uuid[])`, [ids])
        yield* query((s) => `UPDATE "${s}".webhook_endpoints SET last_success_at = now() WHERE url = $1`, [healthy.url])
        // three deliverers of 4 slots each: endpoints in failure may hold 2 of each one's
        for (let i = 0; i < 3; i++) yield* deliverer({ webhookTimeout: Duration.seconds(60), webhookConcurrency: 4 })
        for (let i = 0; i < 12; i++) yield* runJob("circuit-user")
        yield* healthy.until(12)
        assert.isTrue(hung.every((h) => h.received.length <= 1), JSON.stringify(hung.map((h) => h.received.length)))
        assert.strictEqual(hung.reduce((n, h) => n + h.open(), 0), 6)
      }), 120_000)

    it.scoped("failed attempts count up in the endpoint's row and a success resets them", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const target = yield* receiver([{ status: 500 }, { status: 500 }, { status: 500 }, { status: 200 }])
        const endpoint = yield* hooks.create("count-user", { url: target.url, eventTypes: ["completed"] })
        const health = query<{ failures: number; failing: boolean; proven: boolean; probe: boolean }>((s) =>
          `SELECT consecutive_failures AS failures, failing_since IS NOT NULL AS failing,
             last_success_at IS NOT NULL AS proven, probe_claim IS NOT NULL AS probe
           FROM "${s}".webhook_endpoints WHERE id = $1`, [endpoint.id]).pipe(Effect.map((rows) => rows[0]!))
        yield* deliverer({ webhookRetrySchedule: [Duration.millis(100), Duration.millis(100), Duration.seconds(1)] })
        yield* runJob("count-user")
        // three failures, then a second's wait before the fourth attempt
        assert.deepStrictEqual(
          yield* eventually(health, (h) => h.failures === 3),
          { failures: 3, failing: true, proven: false, probe: false }
        )
        yield* target.until(4)
        assert.deepStrictEqual(
          yield* eventually(health, (h) => h.proven),
          { failures: 0, failing: false, proven: true, probe: false }
        )
      }), 60_000)

    it.scoped("an endpoint's health belongs to its URL: a new URL starts unproven, re-activating clears the failures", () =>
      Effect.gen(function*() {
        yield* clean
        const hooks = yield* Webhooks
        const endpoint = yield* hooks.create("health-user", { url: "http://127.0.0.1:9/a", eventTypes: ["all"] })
        const health = query<{ failures: number; proven: boolean }>((s) =>
          `SELECT consecutive_failures AS failures, last_success_at IS NOT NULL AS proven
           FROM "${s}".webhook_endpoints WHERE id = $1`, [endpoint.id]).pipe(Effect.map((rows) => rows[0]))
        const failing = query((s) =>
          `UPDATE "${s}".webhook_endpoints SET consecutive_failures = 5, last_success_at = now() WHERE id = $1`,
          [endpoint.id])
        yield* failing
        yield* hooks.update(endpoint.id, "health-user", { description: "same URL" })
        assert.deepStrictEqual(yield* health, { failures: 5, proven: true })
        yield* hooks.update(endpoint.id, "health-user", { url: "http://127.0.0.1:9/b" })
        assert.deepStrictEqual(yield* health, { failures: 0, proven: false })
        yield* failing
        yield* hooks.update(endpoint.id, "health-user", { active: false })
        yield* hooks.update(endpoint.id, "health-user", { active: true })
        assert.deepStrictEqual(yield* health, { failures: 0, proven: true })
      }))

    it.scoped("an endpoint deleted while its attempt is in flight: the attempt ends without a failure to record it", () =>
      Effect.gen(function*() {
        yield* clean
        const lines: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) => {
          lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
        })
        const hooks = yield* Webhooks
        const target = yield* receiver(["hang"])
        const endpoint = yield* hooks.create("deleting-user", { url: target.url, eventTypes: ["completed"] })
        const d = yield* deliverer({}, capture)
        yield* runJob("deleting-user")
        yield* target.until(1)
        yield* hooks.remove(endpoint.id, "deleting-user")
        // the attempt times out (1 s) and is recorded, or rather not: its delivery went with the endpoint
        yield* eventually(d.stats, (s) => s.inFlight === 0 && s.attempts === 1)
        assert.deepStrictEqual(lines, [])
      }), 60_000)

    it.scoped("a failing loop logs its first failure, a line per backoff cap with a count, its recovery; not each retry", () =>
      Effect.gen(function*() {
        yield* clean
        const lines: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) => {
          lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
        })
        yield* deliverer({ retryMaxBackoff: Duration.millis(500) }, capture)
        yield* query((s) => `ALTER TABLE "${s}".webhook_deliveries RENAME TO webhook_deliveries_away`)
        const restore = query((s) => `ALTER TABLE "${s}".webhook_deliveries_away RENAME TO webhook_deliveries`)
        const count = (line: string) => Number(/still failing: (\d+) failures/.exec(line)?.[1] ?? 0)
        // a "still failing" line counting at least 6 failures: retried more often than it logs
        yield* eventually(Effect.sync(() => lines), (all) => all.some((l) => count(l) >= 6)).pipe(
          Effect.ensuring(Effect.orDie(restore))
        )
        yield* eventually(Effect.sync(() => lines), (all) => all.some((l) => l.includes("recovered")))
        const failures = lines.filter((l) => l.includes("the webhook deliverer"))
        assert.match(failures[0]!, /^WARN the webhook deliverer failed: .*webhook_deliveries.*; retrying with backoff$/)
        assert.match(failures[failures.length - 1]!, /^INFO the webhook deliverer recovered after \d+ failures/)
        const still = failures.filter((l) => l.includes("still failing"))
        const total = Number(/after (\d+) failures/.exec(failures[failures.length - 1]!)![1])
        assert.isBelow(still.length, total - 2)
        assert.strictEqual(failures.length, still.length + 2)
        assert.isTrue(lines.every((l) => !l.includes("\n")), "one line each, no stack trace")
      }), 60_000)
  })
})
