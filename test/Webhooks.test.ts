import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { Webhook } from "standardwebhooks"
import { JobWatchConfig } from "../src/Config.js"
import { Jobs } from "../src/Jobs.js"
import { parseRetryAfter, WebhookDeliverer } from "../src/Webhooks/WebhookDeliverer.js"
import { Webhooks } from "../src/Webhooks.js"
import { Workers } from "../src/Workers.js"
import { runJob, uniqueQueue } from "./support/fixtures.js"
import { receiver } from "./support/receiver.js"
import { testLayer } from "./support/workers.js"

const config = {
  webhookAllowPrivate: true,
  webhookTimeout: "500 millis",
  webhookRetrySchedule: ["100 millis", "100 millis", "100 millis"],
  refreshInterval: "1 second"
} as const


const deliveryRow = (eventId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const rows = yield* sql.unsafe<{ status: string; attempts: number }>(
      `SELECT status, attempts FROM "${schema}".webhook_deliveries WHERE event_id = $1`,
      [eventId]
    )
    return rows[0]
  })

/** The delivery of `eventId` with whether a deliverer holds it now, once `holds` says so (up to 20 s). */
const deliveryWhen = (eventId: string, holds: (row: { status: string; attempts: number; locked: boolean }) => boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    for (let i = 0; i < 1000; i++) {
      const [row] = yield* sql.unsafe<{ status: string; attempts: number; locked: boolean }>(
        `SELECT status, attempts, locked_until IS NOT NULL AS locked FROM "${schema}".webhook_deliveries WHERE event_id = $1`,
        [eventId]
      )
      if (row !== undefined && holds(row)) return row
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error(`delivery ${eventId} never got there`))
  })

/**
 * Waits until every delivery row to `url` is settled (succeeded or failed for good: none pending) and answers how
 * many there are. The rows are written in the transaction of their event, and an attempt is recorded after its
 * request was answered: once all are settled, everything that will ever reach `url` from the events so far has.
 */
const settledDeliveriesTo = (url: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    for (let i = 0; i < 1000; i++) {
      const [row] = yield* sql.unsafe<{ total: number; pending: number }>(
        `SELECT count(*)::int AS total, (count(*) FILTER (WHERE status = 'pending'))::int AS pending
         FROM "${schema}".webhook_deliveries WHERE url = $1`,
        [url]
      )
      if (row !== undefined && row.pending === 0) return row.total
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error(`deliveries to ${url} still pending after 20 s`))
  })

describe("webhooks", () => {
  layer(testLayer(config), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("every delivery verifies with standardwebhooks, before and after a secret rotation (both secrets sign)", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const target = yield* receiver()
        const created = yield* hooks.create("sig-user", { url: target.url, eventTypes: ["completed"] })
        assert.match(created.secret, /^whsec_[A-Za-z0-9+/=]{40,}$/)
        const jobId = yield* runJob("sig-user")
        const [first] = yield* target.until(1)
        const verified = new Webhook(created.secret).verify(first!.body, first!.headers) as { type: string; data: { jobId: string; result: unknown } }
        assert.strictEqual(verified.type, "job.completed")
        assert.strictEqual(verified.data.jobId, jobId)
        assert.deepStrictEqual(verified.data.result, { ok: true })
        assert.strictEqual(first!.headers["content-type"], "application/json")
        assert.match(first!.headers["user-agent"]!, /jobwatch/)
        const rotated = yield* hooks.rotateSecret(created.id, "sig-user")
        assert.notStrictEqual(rotated.secret, created.secret)
        yield* runJob("sig-user")
        const [, second] = yield* target.until(2)
        // two signatures while the old secret overlaps: a receiver with either verifies
        assert.lengthOf(second!.headers["webhook-signature"]!.split(" "), 2)
        new Webhook(rotated.secret).verify(second!.body, second!.headers)
        new Webhook(created.secret).verify(second!.body, second!.headers)
        assert.throws(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`).verify(second!.body, second!.headers))
      }))

    it.scoped("eventType (one type) and format simple: the flat body of the system jobwatch replaces, signed as Standard Webhooks", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const target = yield* receiver()
        const created = yield* hooks.create("flat-user", { url: target.url, eventType: "completed", format: "simple" })
        assert.deepStrictEqual([created.eventTypes, created.format], [["completed"], "simple"])
        const jobId = yield* runJob("flat-user")
        yield* runJob("flat-user", "failed")
        const [first] = yield* target.until(1)
        const body = new Webhook(created.secret).verify(first!.body, first!.headers) as Record<string, unknown>
        assert.deepInclude(body, {
          id: jobId,
          jobname: "hooked",
          userId: "flat-user",
          eventType: "completed",
          status: "completed",
          result: { ok: true }
        })
        assert.notProperty(body, "data")
        // the failure was not asked for: only the completion came
        yield* settledDeliveriesTo(target.url)
        assert.lengthOf(target.received, 1)

        // progress and failures too, back to the standard body with eventTypes
        const failures = yield* receiver()
        const both = yield* hooks.create("flat-user", { url: failures.url, eventType: "failed", format: "simple" })
        yield* runJob("flat-user", "failed")
        const [failed] = yield* failures.until(1)
        assert.deepInclude(new Webhook(both.secret).verify(failed!.body, failed!.headers) as object, {
          eventType: "failed",
          error: "it broke"
        })
        const standard = yield* hooks.update(both.id, "flat-user", { format: "standard", eventType: "completed" })
        assert.deepStrictEqual([standard.eventTypes, standard.format], [["completed"], "standard"])
        yield* runJob("flat-user")
        const [, again] = yield* failures.until(2)
        assert.strictEqual((new Webhook(both.secret).verify(again!.body, again!.headers) as { type: string }).type, "job.completed")

        // neither eventTypes nor eventType, or an unknown format: refused, nothing created
        const before = (yield* hooks.list("flat-user")).length
        for (const input of [{ url: target.url }, { url: target.url, eventType: "completed", format: "xml" }]) {
          const refused = yield* Effect.flip(hooks.create("flat-user", input))
          assert.strictEqual(refused._tag, "InvalidInput")
        }
        assert.lengthOf(yield* hooks.list("flat-user"), before)
      }))

    it.scoped("500, then no answer past the timeout, then 200: the same webhook-id three times, and the delivery succeeds", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const target = yield* receiver([{ status: 500 }, "hang", { status: 200 }])
        const endpoint = yield* hooks.create("retry-user", { url: target.url, eventTypes: ["completed"] })
        yield* runJob("retry-user")
        const got = yield* target.until(3)
        const ids = got.map((r) => r.headers["webhook-id"])
        assert.strictEqual(new Set(ids).size, 1)
        for (const r of got) new Webhook(endpoint.secret).verify(r.body, r.headers)
        // the timestamps are per attempt
        assert.strictEqual(new Set(got.map((r) => r.body)).size, 1)
        let row = yield* deliveryRow(ids[0]!)
        for (let i = 0; i < 250 && row?.status !== "succeeded"; i++) {
          yield* Effect.sleep("20 millis")
          row = yield* deliveryRow(ids[0]!)
        }
        assert.deepStrictEqual(row, { status: "succeeded", attempts: 3 })
        const log = yield* hooks.deliveries(endpoint.id, "retry-user", {})
        assert.deepStrictEqual(log.deliveries[0]!.attempts.map((a) => a.statusCode), [500, null, 200])
        assert.match(log.deliveries[0]!.attempts[1]!.error!, /no answer within/)
      }))

    it.scoped("410 disables the endpoint; Retry-After on 429 is honoured", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const gone = yield* receiver([{ status: 410 }])
        const endpoint = yield* hooks.create("gone-user", { url: gone.url, eventTypes: ["completed"] })
        yield* runJob("gone-user")
        yield* gone.until(1)
        let current = yield* hooks.get(endpoint.id, "gone-user")
        for (let i = 0; i < 250 && current.active; i++) {
          yield* Effect.sleep("20 millis")
          current = yield* hooks.get(endpoint.id, "gone-user")
        }
        assert.isFalse(current.active)
        assert.match(current.disabledReason!, /410/)
        yield* runJob("gone-user")
        assert.strictEqual(yield* settledDeliveriesTo(gone.url), 1, "no delivery for a disabled endpoint")
        assert.lengthOf(gone.received, 1, "a disabled endpoint gets nothing more")

        // a redirect is a failure, not followed: the same delivery is retried at the same URL
        const moved = yield* receiver([{ status: 302, headers: { location: "http://127.0.0.1:9/elsewhere" } }, { status: 200 }])
        yield* hooks.create("moved-user", { url: moved.url, eventTypes: ["completed"] })
        yield* runJob("moved-user")
        const [m1, m2] = yield* moved.until(2)
        assert.strictEqual(m1!.headers["webhook-id"], m2!.headers["webhook-id"])

        const busy = yield* receiver([{ status: 429, headers: { "retry-after": "1" } }, { status: 200 }])
        yield* hooks.create("busy-user", { url: busy.url, eventTypes: ["completed"] })
        yield* runJob("busy-user")
        const [first, second] = yield* busy.until(2)
        // the schedule says 100 ms; the receiver asked for a second
        assert.isAtLeast(second!.at - first!.at, 900)
      }))

    it.scoped("an endpoint subscribed to completed gets nothing else; progress goes out only at milestones", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const jobs = yield* Jobs
        const workers = yield* Workers
        const completedOnly = yield* receiver()
        const progressOnly = yield* receiver()
        const everything = yield* receiver()
        yield* hooks.create("kinds-user", { url: completedOnly.url, eventTypes: ["completed"] })
        yield* hooks.create("kinds-user", { url: progressOnly.url, eventTypes: ["progress"] })
        yield* hooks.create("kinds-user", { url: everything.url, eventTypes: ["all"] })
        const queue = uniqueQueue("kinds")
        const ref = yield* jobs.enqueue({ name: "steps", queue, owner: "kinds-user" })
        yield* workers.claim("wk", { queues: [queue], start: true })
        for (let p = 0; p <= 98; p += 7) yield* workers.progress(ref.id, { percent: p, force: true }, { workerId: "wk" })
        yield* workers.complete(ref.id, { workerId: "wk" })
        yield* completedOnly.until(1)
        // the milestones of a 0 → 98 run in 7-point steps: 0, then crossing 25, 50, 75, or 10+ points since the last
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const marked = yield* sql.unsafe<{ progress: number }>(
          `SELECT progress FROM "${schema}".job_events WHERE job_id = $1 AND type = 'job.progress' AND milestone ORDER BY version`,
          [ref.id]
        )
        const progress = yield* progressOnly.until(marked.length)
        assert.strictEqual(yield* settledDeliveriesTo(progressOnly.url), marked.length)
        assert.strictEqual(yield* settledDeliveriesTo(completedOnly.url), 1)
        // deliveries to one endpoint run concurrently (up to webhookEndpointConcurrency): order by version
        const byVersion = (rs: ReadonlyArray<{ readonly body: string }>) =>
          rs.map((r) => JSON.parse(r.body) as { type: string; data: { version: number; progress: number } })
            .sort((a, b) => a.data.version - b.data.version)
        assert.deepStrictEqual(byVersion(progressOnly.received).map((b) => b.data.progress), marked.map((m) => m.progress))
        assert.isBelow(marked.length, 15, "not every report")
        assert.isTrue(progress.every((r) => JSON.parse(r.body).type === "job.progress"))
        assert.deepStrictEqual(completedOnly.received.map((r) => JSON.parse(r.body).type), ["job.completed"])
        // all: created (pending), claimed and started (running), the milestones, completed
        yield* everything.until(marked.length + 3)
        assert.strictEqual(yield* settledDeliveriesTo(everything.url), marked.length + 3)
        assert.lengthOf(everything.received, marked.length + 3)
        const types = byVersion(everything.received).map((b) => b.type)
        assert.deepStrictEqual(types.filter((t) => t !== "job.progress"), ["job.status.changed", "job.status.changed", "job.completed"])
      }))

    it.scoped("one endpoint hanging does not hold back another", () =>
      Effect.gen(function*() {
        const hooks = yield* Webhooks
        const slow = yield* receiver(["hang"])
        const fast = yield* receiver()
        yield* hooks.create("slow-user", { url: slow.url, eventTypes: ["completed"] })
        yield* hooks.create("slow-user", { url: fast.url, eventTypes: ["completed"] })
        for (let i = 0; i < 3; i++) yield* runJob("slow-user")
        yield* fast.until(3)
        // the fast endpoint got all three while the slow one still holds requests open
        assert.isAtLeast(slow.open(), 1)
      }))
  })

  describe("a job's own webhookUrl, and restarts", () => {
    layer(testLayer({ ...config, webhooks: false, webhookRetrySchedule: ["1 second"] }), { excludeTestServices: true, timeout: 60_000 })((it) => {
      /** A deliverer of its own (the layer's is off), started and stopped by the test. */
      const startDeliverer = Effect.gen(function*() {
        const base = yield* JobWatchConfig
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          WebhookDeliverer.DefaultWithoutDependencies.pipe(Layer.provide(Layer.succeed(JobWatchConfig, { ...base, webhooks: true }))),
          scope
        )
        return scope
      })

      it.scoped("a stopped-then-restarted deliverer finishes the pending retries", () =>
        Effect.gen(function*() {
          const hooks = yield* Webhooks
          const target = yield* receiver([{ status: 500 }, { status: 200 }])
          yield* hooks.create("restart-user", { url: target.url, eventTypes: ["completed"] })
          const first = yield* startDeliverer
          yield* runJob("restart-user")
          const [attempt] = yield* target.until(1)
          const id = attempt!.headers["webhook-id"]!
          // the failed attempt is recorded and its retry scheduled; then the service stops
          yield* deliveryWhen(id, (row) => row.attempts === 1 && !row.locked)
          yield* Scope.close(first, Exit.void)
          // nothing runs it now; a new deliverer (a restarted service) takes it up when it falls due
          const second = yield* startDeliverer
          const [, retried] = yield* target.until(2)
          assert.strictEqual(retried!.headers["webhook-id"], id)
          const done = yield* deliveryWhen(id, (row) => row.status !== "pending")
          assert.deepStrictEqual(done, { status: "succeeded", attempts: 2, locked: false })
          yield* Scope.close(second, Exit.void)
        }))

      it.scoped("a deliverer stopped mid-attempt releases the delivery at once; the next one makes the attempt again", () =>
        Effect.gen(function*() {
          const hooks = yield* Webhooks
          const target = yield* receiver(["hang", { status: 200 }])
          yield* hooks.create("stop-user", { url: target.url, eventTypes: ["completed"] })
          const first = yield* startDeliverer
          yield* runJob("stop-user")
          const [attempt] = yield* target.until(1)
          const id = attempt!.headers["webhook-id"]!
          yield* Scope.close(first, Exit.void)
          // released: not held, the unfinished attempt not counted
          assert.deepStrictEqual(yield* deliveryRow(id), { status: "pending", attempts: 0 })
          const second = yield* startDeliverer
          const [, again] = yield* target.until(2)
          assert.strictEqual(again!.headers["webhook-id"], id)
          assert.deepStrictEqual(yield* deliveryWhen(id, (row) => row.status !== "pending"), { status: "succeeded", attempts: 1, locked: false })
          yield* Scope.close(second, Exit.void)
        }))

      it.scoped("a job's webhookUrl gets its completion or failure, and nothing else", () =>
        Effect.gen(function*() {
          const jobs = yield* Jobs
          const workers = yield* Workers
          const target = yield* receiver()
          const deliverer = yield* startDeliverer
          const queue = uniqueQueue("callback")
          const done = yield* jobs.enqueue({ name: "cb", queue, webhookUrl: target.url })
          const broken = yield* jobs.enqueue({ name: "cb2", queue, webhookUrl: target.url })
          yield* workers.claim("wcb", { queues: [queue], limit: 2, start: true })
          yield* workers.progress(done.id, { percent: 50, force: true }, { workerId: "wcb" })
          yield* workers.complete(done.id, { workerId: "wcb", result: 7 })
          yield* workers.fail(broken.id, { workerId: "wcb", code: "nope", error: "no luck", retryable: false })
          const got = yield* target.until(2)
          assert.strictEqual(yield* settledDeliveriesTo(target.url), 2)
          assert.lengthOf(target.received, 2)
          const bodies = got.map((r) => JSON.parse(r.body) as { type: string; data: { jobId: string; result?: unknown; error?: unknown } })
          const byJob = new Map(bodies.map((b) => [b.data.jobId, b]))
          assert.strictEqual(byJob.get(done.id)?.type, "job.completed")
          assert.strictEqual(byJob.get(done.id)?.data.result, 7)
          assert.strictEqual(byJob.get(broken.id)?.type, "job.failed")
          assert.deepStrictEqual(byJob.get(broken.id)?.data.error, { code: "nope", message: "no luck" })
          for (const r of got) {
            assert.match(r.headers["webhook-id"]!, /^[0-9a-f-]{36}$/)
            // no secret given: unsigned
            assert.isUndefined(r.headers["webhook-signature"])
          }
          yield* Scope.close(deliverer, Exit.void)
        }))

      it.scoped("a job's callback with a webhookSecret is signed with it (verified by standardwebhooks)", () =>
        Effect.gen(function*() {
          const jobs = yield* Jobs
          const workers = yield* Workers
          const target = yield* receiver()
          const deliverer = yield* startDeliverer
          const queue = uniqueQueue("signed-callback")
          const secret = `whsec_${randomBytes(32).toString("base64")}`
          const job = yield* jobs.enqueue({ name: "cb", queue, webhookUrl: target.url, webhookSecret: secret })
          yield* workers.claim("wsig", { queues: [queue], limit: 1, start: true })
          yield* workers.complete(job.id, { workerId: "wsig", result: { ok: true } })
          const [got] = yield* target.until(1)
          const verified = new Webhook(secret).verify(got!.body, got!.headers) as { type: string; data: { jobId: string; result: unknown } }
          assert.strictEqual(verified.type, "job.completed")
          assert.strictEqual(verified.data.jobId, job.id)
          assert.deepStrictEqual(verified.data.result, { ok: true })
          // another secret does not verify it
          assert.throws(() => new Webhook(`whsec_${randomBytes(32).toString("base64")}`).verify(got!.body, got!.headers))
          yield* Scope.close(deliverer, Exit.void)
        }))
    })
  })

  describe("guards", () => {
    layer(
      testLayer({ ...config, webhookAllowPrivate: false, webhookDisableAfter: "200 millis", webhookRetrySchedule: ["150 millis", "150 millis", "150 millis"] }),
      { excludeTestServices: true, timeout: 60_000 }
    )((it) => {
      it.scoped("at delivery time a name resolving to a private address is refused; an endpoint failing too long is turned off", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { schema } = yield* JobWatchConfig
          const target = yield* receiver()
          // stored as if it had been allowed when created (or its name was rebound since): localhost is loopback
          const url = target.url.replace("127.0.0.1", "localhost")
          const [row] = yield* sql.unsafe<{ id: string }>(
            `INSERT INTO "${schema}".webhook_endpoints (owner, url, event_types, secret) VALUES ('guard-user', $1, '{completed}', 'whsec_${Buffer.alloc(32, 1).toString("base64")}') RETURNING id`,
            [url]
          )
          yield* runJob("guard-user")
          const hooks = yield* Webhooks
          let endpoint = yield* hooks.get(row!.id, undefined)
          for (let i = 0; i < 250 && endpoint.active; i++) {
            yield* Effect.sleep("20 millis")
            endpoint = yield* hooks.get(row!.id, undefined)
          }
          assert.lengthOf(target.received, 0, "nothing reached the private address")
          const log = yield* hooks.deliveries(row!.id, undefined, {})
          assert.match(log.deliveries[0]!.attempts[0]!.error!, /private address/)
          // failing since the first attempt, for longer than webhookDisableAfter
          assert.isFalse(endpoint.active)
          assert.match(endpoint.disabledReason!, /failing/)
        }))
    })
  })

  it("Retry-After: seconds or an HTTP date, capped at a day", () => {
    const now = Date.parse("2026-11-23T12:00:00Z")
    assert.strictEqual(parseRetryAfter("120", now), 120)
    assert.strictEqual(parseRetryAfter("Mon, 23 Nov 2026 12:01:30 GMT", now), 90)
    assert.strictEqual(parseRetryAfter("Mon, 23 Nov 2026 11:00:00 GMT", now), 0)
    assert.strictEqual(parseRetryAfter("999999999", now), 24 * 3600)
    assert.isNull(parseRetryAfter("soon", now))
    assert.isNull(parseRetryAfter(undefined, now))
  })
})
