import { assert, describe, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { JobEvent } from "../src/Domain/JobEvent.js"
import { Jobs } from "../src/Jobs.js"
import { messageOf } from "../src/Amqp/Message.js"
import { simpleBodyOf } from "../src/Webhooks/claims.js"
import * as WorkerHelpers from "../src/Workers/WorkerHelpers.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { eventsOf, testLayer } from "./support/workers.js"

const report = { name: "report.pdf", url: "https://files.example.com/r/1.pdf", contentType: "application/pdf", size: 48213 }
const log = { name: "run.log", url: "s3://bucket/logs/1.txt", contentType: "text/plain; charset=utf-8", size: 120, checksum: "sha256:9f86d081884c7d65" }
const parseJson = Schema.decodeUnknownSync(Schema.parseJson())

describe("external jobs and artefacts, in process", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("an external job is never claimed; the helpers drive it by id: progress 0 keeps it pending, > 0 runs it, completion is explicit", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("ext")
        const ref = yield* jobs.enqueue({ name: "celery-task", queue, tracking: "external" })
        const queued = yield* jobs.enqueue({ name: "ordinary", queue })
        const claimed = yield* workers.claim("w-ext", { queues: [queue], limit: 10 })
        assert.deepStrictEqual(claimed.map((j) => j.id), [queued.id], "only the queue's own job is claimed")
        const fresh = yield* jobs.get(ref.id)
        assert.deepStrictEqual([fresh.status, fresh.tracking, fresh.artefacts, fresh.queuePosition], ["pending", "external", [], null])

        yield* WorkerHelpers.progress(ref.id, 0, "queued at celery")
        assert.strictEqual((yield* jobs.get(ref.id)).status, "pending")
        yield* WorkerHelpers.progress(ref.id, 40, "processing", "Processing data", undefined, { force: true })
        const running = yield* jobs.get(ref.id)
        assert.deepStrictEqual([running.status, running.attempt, running.workerId, running.leaseExpiresAt], ["running", 1, null, null])
        yield* WorkerHelpers.attachArtefacts(ref.id, [log])
        const done = yield* WorkerHelpers.completeJob(ref.id, { rows: 3 }, "done", { artefacts: [report, { ...log, size: 150 }] })
        assert.strictEqual(done.status, "completed")
        const got = yield* jobs.get(ref.id)
        assert.deepStrictEqual(got.artefacts, [{ ...log, size: 150 }, { ...report, checksum: null }], "replaced by name, appended in order")

        const events = yield* eventsOf(ref.id)
        assert.deepStrictEqual(events.map((e) => [e.type, e.status]), [
          ["job.status.changed", "pending"],
          ["job.progress", "pending"],
          ["job.progress", "running"],
          ["job.progress", "running"],
          ["job.completed", "completed"]
        ])
        assert.deepStrictEqual(events[3]!.data, { artefacts: [log] }, "an attachment is a progress event listing what it attached")
        const terminal = events.at(-1)!
        assert.deepStrictEqual(terminal.artefacts, got.artefacts)
        assert.isTrue(events.slice(0, -1).every((e) => e.artefacts === null), "only the terminal event carries the list")
        assert.deepStrictEqual(simpleBodyOf(terminal, "celery-task", null).artefacts, got.artefacts)
        const message = messageOf({ event: terminal, name: "celery-task", queue, owner: null } as never, {
          exchange: "x",
          erpExchange: "y",
          allProgress: false
        } as never)!
        assert.deepStrictEqual((parseJson(message.content.toString()) as { artefacts: unknown }).artefacts, [
          { name: "run.log", url: log.url, content_type: log.contentType, size: 150, checksum: log.checksum },
          { name: "report.pdf", url: report.url, content_type: report.contentType, size: report.size, checksum: null }
        ])
      }))

    it.effect("an external job's failure is final whatever its attempts, with its progress and artefacts; a held job's artefacts need its holder", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("ext-fail")
        const ref = yield* jobs.enqueue({ name: "celery-task", queue, tracking: "external", maxAttempts: 5 })
        const failed = yield* WorkerHelpers.failJob(ref.id, "boom", "it broke", { progress: 35, artefacts: [log] })
        assert.deepStrictEqual([failed.status, failed.progress.percent, failed.attempt], ["failed", 35, 1])
        const events = yield* eventsOf(ref.id)
        assert.deepStrictEqual(events.at(-1)!.artefacts, [log])
        const again = yield* Effect.flip(WorkerHelpers.completeJob(ref.id))
        assert.strictEqual(again._tag, "InvalidTransition")

        const held = yield* jobs.enqueue({ name: "ordinary", queue })
        yield* workers.claim("w-holder", { queues: [queue], start: true })
        const foreign = yield* Effect.flip(workers.attach(held.id, [report], { workerId: "w-other" }))
        assert.strictEqual(foreign._tag, "NotJobHolder")
        const tooMany = Array.from({ length: 101 }, (_, i) => ({ ...report, name: `f${i}` }))
        const refused = yield* Effect.flip(workers.attach(held.id, tooMany, { workerId: "w-holder" }))
        assert.strictEqual(refused._tag, "InvalidInput")
        const badUrl = yield* Effect.flip(workers.attach(held.id, [{ ...report, url: "javascript:alert(1)" }]))
        assert.strictEqual(badUrl._tag, "InvalidInput")
        // a failed completion attaches nothing: both are one transaction
        const notHolder = yield* Effect.flip(workers.complete(held.id, { workerId: "w-other", artefacts: [report] }))
        assert.strictEqual(notHolder._tag, "NotJobHolder")
        assert.deepStrictEqual((yield* jobs.get(held.id)).artefacts, [])
        yield* workers.complete(held.id, { workerId: "w-holder", artefacts: [report] })
        const terminal = (yield* eventsOf(held.id)).at(-1)!
        assert.deepStrictEqual([terminal.type, terminal.artefacts], ["job.completed", [{ ...report, checksum: null }]])
      }))
  })
})

describe("external jobs and artefacts over HTTP", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("a worker token drives an external job by id alone (PATCH, progress, artefacts; failure with progress); GET and the SSE stream show the artefacts", () =>
      Effect.gen(function*() {
        const user = yield* token("ext-owner")
        const worker = yield* token("ext-worker", ["worker"])
        const queue = uniqueQueue("ext-http")
        const created = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "celery", queue, tracking: "external" } })
        assert.strictEqual(created.status, 201)
        const id = created.body.id as string
        const zero = yield* raw("POST", `/v1/jobs/${id}/progress`, { token: worker, json: { percent: 0, force: true } })
        assert.strictEqual(zero.status, 200, JSON.stringify(zero.body))
        assert.strictEqual((yield* raw("GET", `/v1/jobs/${id}`, { token: user })).body.status, "pending")
        const started = yield* raw("PATCH", `/v1/jobs/${id}`, { token: worker, json: { status: "running" } })
        assert.deepStrictEqual([started.status, started.body.status], [200, "running"])
        const attached = yield* raw("POST", `/v1/jobs/${id}/artefacts`, { token: worker, json: { artefacts: [report] } })
        assert.deepStrictEqual([attached.status, attached.body.artefacts], [200, [{ ...report, checksum: null }]])
        const failed = yield* raw("PATCH", `/v1/jobs/${id}`, {
          token: worker,
          json: { status: "failed", progress: 60, error: { code: "celery", message: "worker lost" }, artefacts: [log] }
        })
        assert.deepStrictEqual([failed.status, failed.body.status, failed.body.progress.percent], [200, "failed", 60])
        const got = yield* raw("GET", `/v1/jobs/${id}`, { token: user })
        assert.deepStrictEqual(got.body.artefacts, [{ ...report, checksum: null }, log])
        const stream = yield* raw("GET", `/v1/jobs/${id}/events`, { token: user })
        const data = String(stream.body).split("\n").filter((line) => line.startsWith("data: "))
          .map((line) => parseJson(line.slice(6)) as JobEvent)
        assert.deepStrictEqual(data.at(-1)!.type, "job.failed")
        assert.deepStrictEqual(data.at(-1)!.artefacts, got.body.artefacts)

        // an ordinary job: GET shows no artefacts; without a worker id nobody reports on it
        const plain = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "plain", queue } })
        const plainGot = yield* raw("GET", `/v1/jobs/${plain.body.id}`, { token: user })
        assert.deepStrictEqual([plainGot.body.tracking, plainGot.body.artefacts], ["queue", []])
        const anonymous = yield* raw("PATCH", `/v1/jobs/${plain.body.id}`, { token: worker, json: { status: "running" } })
        assert.deepStrictEqual([anonymous.status, anonymous.body._tag, anonymous.body.field], [400, "InvalidInput", "workerId"])
        const byUser = yield* raw("PATCH", `/v1/jobs/${id}`, { token: user, json: { status: "running" } })
        assert.strictEqual(byUser.status, 403, "a user token is not a worker")
      }))
  })
})
