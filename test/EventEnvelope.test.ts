import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import * as Migrations from "../src/Database/Migrations.js"
import type { JobEventType } from "../src/Domain/JobEvent.js"
import { JobEvent, WebhookPayload } from "../src/Domain/JobEvent.js"
import { Jobs } from "../src/Jobs.js"
import { WebhookDeliverer } from "../src/Webhooks/WebhookDeliverer.js"
import { Webhooks } from "../src/Webhooks.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { makeLatch } from "./support/latch.js"
import { serverLayer, token } from "./support/http.js"
import { receiver } from "./support/receiver.js"
import * as TestDb from "./support/TestDb.js"

/** The one schema every channel's event is decoded with, from its JSON text. */
const decodeEvent = Schema.decodeUnknown(Schema.parseJson(JobEvent))
const decodeWebhook = Schema.decodeUnknown(Schema.parseJson(WebhookPayload))
const encodeEvent = Schema.encodeSync(JobEvent)

/**
 * A response read as it arrives (`fetch`, streaming): its text so far, and `until(check)`, which waits (up to 20 s)
 * for the text to satisfy `check` each time a chunk arrives. Aborted at the end of the scope.
 */
const live = (url: string, init: RequestInit = {}) =>
  Effect.gen(function*() {
    const controller = new AbortController()
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    const state = { text: "", done: false, error: undefined as string | undefined }
    const latch = makeLatch()
    const changed = latch.notify
    void (async () => {
      try {
        const response = await fetch(url, { ...init, signal: controller.signal })
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        while (true) {
          const { done, value } = await reader.read()
          if (done) break
          state.text += decoder.decode(value, { stream: true })
          changed()
        }
      } catch (error) {
        state.error = String(error)
      }
      state.done = true
      changed()
    })()
    // answers when `check` holds; fails when the stream ended first, or after 20 s
    const until = (check: (text: string) => boolean, what: string) =>
      latch.until(
        () => (check(state.text) || state.done ? { held: check(state.text) } : undefined),
        () => new Error(`${what}: not so after 20 s: ${state.text}`)
      ).pipe(
        Effect.flatMap(({ held }) =>
          held
            ? Effect.succeed(state.text)
            : Effect.fail(new Error(`${what}: ended first (${state.error ?? "closed"}): ${state.text}`))
        )
      )
    return { until, text: () => state.text }
  })

interface SseMessage {
  readonly id: string
  readonly event: string
  readonly data: string
}

/** The complete messages of a `text/event-stream` text (comments and `retry:` skipped). */
const sseMessages = (text: string): ReadonlyArray<SseMessage> =>
  text.split("\n\n").slice(0, -1).flatMap((block) => {
    const fields = new Map<string, string>()
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":")
      if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart())
    }
    const data = fields.get("data")
    return data === undefined ? [] : [{ id: fields.get("id") ?? "", event: fields.get("event") ?? "message", data }]
  })

/** The NDJSON frames of an RPC response (only complete lines). */
const rpcFrames = (text: string): ReadonlyArray<{ readonly _tag: string; readonly values?: ReadonlyArray<unknown> }> =>
  text.split("\n").slice(0, -1).filter((line) => line !== "").map((line) => JSON.parse(line))

const rpcRequest = (tag: string, payload: unknown) =>
  `${JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] })}\n`

/** The values of an RPC stream's chunks (or a part of each), as JSON text, to decode like every channel's. */
const rpcItems = (text: string, part: (value: unknown) => unknown = (value) => value) =>
  rpcFrames(text).flatMap((frame) =>
    frame._tag === "Chunk" ? (frame.values ?? []).map((v) => JSON.stringify(part(v))) : []
  )

/** An `EventsWatch` item's event. */
const streamed = (value: unknown) => (value as { readonly event: unknown }).event

/** A transition into each terminal status ends each job's history; a cancel request keeps its own type. */
const expected: ReadonlyArray<readonly [string, JobEventType]> = [
  ["done", "job.completed"],
  ["broken", "job.failed"],
  ["dropped", "job.canceled"],
  ["removed", "job.deleted"],
  ["stopped", "job.canceled"]
]

describe("one event envelope on every channel", () => {
  layer(serverLayer({ webhookAllowPrivate: true, webhookRetrySchedule: ["100 millis"] }), {
    excludeTestServices: true,
    timeout: 90_000
  })((it) => {
    it.scoped("SSE data, RPC stream items and webhook bodies all decode as JobEvent, in one type vocabulary", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const hooks = yield* Webhooks
        const owner = "envelope-user"
        const bearer = yield* token(owner)
        const address = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
        const base = `http://127.0.0.1:${address.port}`
        const queue = uniqueQueue("envelope")
        const all = yield* receiver()
        const callback = yield* receiver()
        yield* hooks.create(owner, { url: all.url, eventTypes: ["all"] })

        // the user's streams: SSE and RPC, both filtered to the test's queue
        const sse = yield* live(`${base}/v1/events?queue=${queue}&access_token=${bearer}`)
        const rpc = yield* live(`${base}/rpc`, {
          method: "POST",
          headers: { authorization: `Bearer ${bearer}`, "content-type": "application/ndjson" },
          body: rpcRequest("EventsWatch", { queue })
        })
        // open once an event enqueued after they were asked for reaches them (again, until one does: a stream from
        // "now" begins at the oldest transaction still running)
        const markers = new Set<string>()
        for (let i = 0; i < 20; i++) {
          const marker = yield* jobs.enqueue({ name: "marker", queue, owner })
          markers.add(marker.id)
          yield* jobs.cancel(marker.id, { owner })
          const seen = (text: string) => text.includes(marker.id)
          const both = yield* Effect.all([sse.until(seen, "SSE marker"), rpc.until(seen, "RPC marker")]).pipe(
            Effect.timeout("1 second"),
            Effect.option
          )
          if (both._tag === "Some") break
        }

        const enqueue = (name: string, options: { readonly webhookUrl?: string } = {}) =>
          Effect.map(jobs.enqueue({ name, queue, owner, ...options }), (ref) => ref.id)
        const ids = new Map<string, string>()
        for (const [name] of expected) {
          ids.set(name, yield* enqueue(name, name === "done" ? { webhookUrl: callback.url } : {}))
        }
        const id = (name: string) => ids.get(name)!
        yield* jobs.cancel(id("dropped"), { owner })
        yield* jobs.delete(id("removed"), { owner })
        const claimed = yield* workers.claim("w-envelope", { queues: [queue], limit: 3 })
        assert.strictEqual(claimed.length, 3)
        yield* workers.start(id("done"), { workerId: "w-envelope" })
        yield* workers.progress(id("done"), { percent: 50, step: "half", force: true }, { workerId: "w-envelope" })
        yield* workers.complete(id("done"), { workerId: "w-envelope", result: { url: "/out" } })
        yield* workers.fail(id("broken"), { workerId: "w-envelope", code: "oops", error: "broke", retryable: false })
        yield* jobs.cancel(id("stopped"), { owner })
        yield* workers.canceled(id("stopped"), { workerId: "w-envelope" })

        // each job's terminal event, by the envelope's type, in one message
        const allEnded = (items: ReadonlyArray<string>) =>
          expected.every(([name, type]) =>
            items.some((item) => item.includes(`"jobId":"${id(name)}"`) && item.includes(`"type":"${type}"`))
          )
        yield* sse.until((text) => allEnded(sseMessages(text).map((m) => m.data)), "SSE terminal events")
        yield* rpc.until((text) => allEnded(rpcItems(text, streamed)), "RPC terminal events")

        // SSE: every message's data is a JobEvent, and its `event:` is the envelope's type
        const sseEvents = yield* Effect.forEach(sseMessages(sse.text()), (m) =>
          Effect.map(decodeEvent(m.data), (event) => {
            assert.strictEqual(m.event, event.type, `SSE event: ${m.event} for data.type ${event.type}`)
            return event
          }))
        // RPC EventsWatch: every item's event is a JobEvent
        const rpcEvents = yield* Effect.forEach(rpcItems(rpc.text(), streamed), (text) => decodeEvent(text))

        // per job: the job's own SSE stream and the JobWatch RPC, each from version 0 to its end
        interface Watched {
          readonly sse: ReadonlyArray<JobEvent>
          readonly rpc: ReadonlyArray<JobEvent>
        }
        const perJob = new Map<string, Watched>()
        for (const [name] of expected) {
          const jobSse = yield* live(`${base}/v1/jobs/${id(name)}/events?access_token=${bearer}`)
          const jobRpc = yield* live(`${base}/rpc`, {
            method: "POST",
            headers: { authorization: `Bearer ${bearer}`, "content-type": "application/ndjson" },
            body: rpcRequest("JobWatch", { id: id(name) })
          })
          const sseText = yield* jobSse.until(allEndedFor(id(name)), `SSE of ${name}`)
          const ended = (text: string) => rpcFrames(text).some((f) => f._tag === "Exit")
          const rpcText = yield* jobRpc.until(ended, `JobWatch of ${name}`)
          perJob.set(name, {
            sse: yield* Effect.forEach(sseMessages(sseText), (m) =>
              Effect.map(decodeEvent(m.data), (event) => {
                assert.strictEqual(m.event, event.type)
                return event
              })),
            rpc: yield* Effect.forEach(rpcItems(rpcText), (text) => decodeEvent(text))
          })
        }

        // webhooks: every body is { type, timestamp, data: JobEvent } (the endpoint gets all; the callback its end)
        const webhookEvents = (bodies: ReadonlyArray<{ readonly body: string }>) =>
          Effect.forEach(bodies, (r) =>
            Effect.map(decodeWebhook(r.body), (payload) => {
              assert.strictEqual(payload.type, payload.data.type)
              assert.strictEqual(payload.timestamp.epochMillis, payload.data.timestamp.epochMillis)
              return payload.data
            }))
        const isOurs = (event: JobEvent) => !markers.has(event.jobId)
        // what webhooks carry: transitions, and progress at milestones
        const hooked = (event: JobEvent) =>
          event.type !== "job.cancel_requested" && (event.type !== "job.progress" || event.milestone)
        // and each marker's two (enqueued, canceled)
        yield* all.until(sseEvents.filter(isOurs).filter(hooked).length + 2 * markers.size)
        const hookEvents = yield* webhookEvents(all.received)
        const callbackEvents = yield* webhookEvents(yield* callback.until(1))

        // one vocabulary: each job's last event is its terminal type on every channel
        const lastOf = (events: ReadonlyArray<JobEvent>, jobId: string) =>
          events.filter((e) => e.jobId === jobId).at(-1)?.type
        const byVersion = (events: ReadonlyArray<JobEvent>) =>
          [...events].sort((a, b) => a.jobId.localeCompare(b.jobId) || a.version - b.version)
        for (const [name, type] of expected) {
          assert.strictEqual(lastOf(sseEvents, id(name)), type, `SSE /v1/events, ${name}`)
          assert.strictEqual(lastOf(rpcEvents, id(name)), type, `EventsWatch, ${name}`)
          assert.strictEqual(lastOf(perJob.get(name)!.sse, id(name)), type, `SSE /v1/jobs/{id}/events, ${name}`)
          assert.strictEqual(lastOf(perJob.get(name)!.rpc, id(name)), type, `JobWatch, ${name}`)
          assert.strictEqual(lastOf(byVersion(hookEvents), id(name)), type, `webhook, ${name}`)
        }
        assert.deepStrictEqual(callbackEvents.map((e) => [e.jobId, e.type, e.result]), [
          [id("done"), "job.completed", { url: "/out" }]
        ])
        const done = perJob.get("done")!.sse
        assert.deepStrictEqual(done.map((e) => e.type), [
          "job.status.changed", "job.status.changed", "job.status.changed", "job.progress", "job.completed"
        ])
        assert.deepStrictEqual(perJob.get("stopped")!.sse.map((e) => e.type), [
          "job.status.changed", "job.status.changed", "job.cancel_requested", "job.canceled"
        ])
        const failed = perJob.get("broken")!.sse.at(-1)!
        assert.deepStrictEqual([failed.error?.code, failed.error?.message], ["oops", "broke"])

        // one shape: an event is the same envelope on every channel (webhooks carry transitions and milestones)
        const encoded = (events: ReadonlyArray<JobEvent>) => byVersion(events.filter(isOurs)).map((e) => encodeEvent(e))
        const fromJobs = [...perJob.values()]
        assert.deepStrictEqual(encoded(rpcEvents), encoded(sseEvents))
        assert.deepStrictEqual(encoded(fromJobs.flatMap((j) => j.sse)), encoded(sseEvents))
        assert.deepStrictEqual(encoded(fromJobs.flatMap((j) => j.rpc)), encoded(sseEvents))
        assert.deepStrictEqual(encoded(hookEvents), encoded(sseEvents.filter(hooked)))
      }))
  })
})

describe("webhook bodies across the upgrade to bodies rendered at delivery (sql/0015)", () => {
  const config = { webhookAllowPrivate: true, refreshInterval: "1 second" } as const
  layer(TestDb.layer(config), { excludeTestServices: true, timeout: 60_000 })(
    (it) => {
      it.scoped("a delivery pending from before the upgrade (its body stored) is delivered from its event", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { schema } = yield* JobWatchConfig
          const q = (text: string, params: ReadonlyArray<string> = []) =>
            sql.unsafe<Record<string, unknown>>(text.replaceAll("$schema", `"${schema}"`), params)
          const target = yield* receiver()
          // a database as the versioned migrations up to 0012 left it: its fan-out (0007's) stores bodies
          const all = yield* Migrations.load()
          yield* Migrations.run(all.filter((m) => m.id <= 12), [])
          yield* q(
            `INSERT INTO $schema.webhook_endpoints (owner, url, event_types, secret, last_success_at)
             VALUES ('upgrade-user', $1, '{completed}', 'whsec_${Buffer.alloc(32, 3).toString("base64")}', now())
             RETURNING id`,
            [target.url]
          )
          const finished = (result: string) =>
            Effect.gen(function*() {
              const [job] = yield* q(
                `INSERT INTO $schema.jobs (id, queue, name, owner, status, result, version, finished_at)
                 VALUES ($schema.uuid_v7(), 'upgrade', 'old', 'upgrade-user', 'completed', $1::jsonb, 1, now())
                 RETURNING id`,
                [result]
              )
              yield* q(
                `INSERT INTO $schema.job_events (job_id, version, type, status)
                 VALUES ($1, 1, 'job.status.changed', 'completed')`,
                [String(job!.id)]
              )
              return String(job!.id)
            })
          const before = yield* finished(`{"n":1}`)
          const [stored] = yield* q(`SELECT type, body FROM $schema.webhook_deliveries WHERE job_id = $1`, [before])
          assert.strictEqual(stored!.type, "job.completed")
          assert.isNotNull(stored!.body)

          // the upgrade: 0015 (and what follows it) and the live functions; the old row keeps its body, a new one
          // records only the event
          assert.include(yield* Migrations.run(), 15)
          assert.lengthOf(yield* q(`SELECT 1 FROM pg_proc WHERE proname = 'webhook_type'
            AND pronamespace = $1::regnamespace`, [`"${schema}"`]), 0)
          const after = yield* finished(`{"n":2}`)
          const [fresh] = yield* q(`SELECT type, body FROM $schema.webhook_deliveries WHERE job_id = $1`, [after])
          assert.deepStrictEqual(fresh, { type: null, body: null })

          // both are delivered, each body rendered from its event's envelope
          const base = yield* JobWatchConfig
          const on = Layer.succeed(JobWatchConfig, { ...base, webhooks: true })
          yield* Layer.build(WebhookDeliverer.Default.pipe(Layer.provide(on)))
          const got = yield* target.until(2)
          const payloads = yield* Effect.forEach(got, (r) => decodeWebhook(r.body))
          const byJob = new Map(payloads.map((p) => [p.data.jobId as string, p]))
          assert.deepStrictEqual([byJob.get(before)?.type, byJob.get(before)?.data.result], ["job.completed", { n: 1 }])
          assert.deepStrictEqual([byJob.get(after)?.type, byJob.get(after)?.data.result], ["job.completed", { n: 2 }])
        }))
    }
  )
})

/** A job's own SSE stream has ended with its terminal event. */
const allEndedFor = (jobId: string) => (text: string) =>
  sseMessages(text).some((m) =>
    m.data.includes(`"jobId":"${jobId}"`) &&
    ["job.completed", "job.failed", "job.canceled", "job.deleted"].includes(m.event)
  )
