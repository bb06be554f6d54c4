import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Layer, ParseResult, Ref, Stream } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import type { StreamedEvent } from "../src/Rpcs.js"
import { Rpcs } from "../src/Rpcs.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

/** The typed client checks the request schemas itself: a payload out of bounds never leaves the process. */
const refusedLocally = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && Cause.isDie(exit.cause) && ParseResult.isParseError(Cause.squash(exit.cause)))

/** NDJSON `body` posted to /rpc as `bearer`: the HTTP status, and the answer (its frames, or the JSON error). */
const post = (bearer: string, body: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post("/rpc").pipe(HttpClientRequest.bearerToken(bearer), HttpClientRequest.bodyText(body, "application/ndjson"))
    )
    const text = yield* response.text
    const lines = text.split("\n").filter((line) => line !== "")
    const frames: Array<any> = []
    for (const line of lines) {
      try {
        frames.push(JSON.parse(line))
      } catch {
        frames.push({ unparsable: line })
      }
    }
    return { status: response.status, text, frames }
  }).pipe(Effect.scoped, Effect.orDie)

const request = (tag: string, payload: unknown, id = "1") =>
  `${JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] })}\n`

/** The typed failure an `Exit` frame carries (undefined when it is not a typed failure). */
const failureOf = (frame: any) =>
  frame?._tag === "Exit" && frame.exit?._tag === "Failure" && frame.exit.cause?._tag === "Fail" ? frame.exit.cause.error : undefined

const nested = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`

/** An `RpcClient` of the group over real HTTP (NDJSON, `fetch`) to the test server, sending `bearer` when given. */
const clientAs = (bearer: string | undefined) =>
  Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
    const protocol = RpcClient.layerProtocolHttp({
      url: `http://127.0.0.1:${address.port}/rpc`,
      ...(bearer === undefined ? {} : { transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(bearer)) })
    }).pipe(Layer.provide([RpcSerialization.layerNdjson, FetchHttpClient.layer]))
    return yield* RpcClient.make(Rpcs).pipe(Effect.provide(protocol))
  })

/** Waits (really, up to 20 s) until `check` holds. */
const eventually = <A>(check: Effect.Effect<A>, holds: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const value = yield* check
      if (holds(value)) return value
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error("still not so after 20 s"))
  })

describe("Effect RPC over HTTP", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("a user's operations: enqueue, batch, get, status, list, cancel, delete, wait, waitAll, waitFirst", () =>
      Effect.gen(function*() {
        const alice = yield* clientAs(yield* token("alice"))
        const worker = yield* clientAs(yield* token("w", ["worker"]))
        const queue = uniqueQueue("rpc")
        const ref = yield* alice.JobEnqueue({ name: "one", queue, payload: { n: 1 } })
        assert.strictEqual(ref.status, "pending")
        const batch = yield* alice.JobEnqueueBatch({ jobs: [{ name: "two", queue }, { name: "three", queue }] })
        assert.deepStrictEqual(batch.map((r) => r.name), ["two", "three"])
        const info = yield* alice.JobGet({ id: ref.id })
        assert.strictEqual(info.owner, "alice")
        assert.deepStrictEqual(info.payload, { n: 1 })
        const status = yield* alice.JobStatus({ id: ref.id })
        assert.strictEqual(status.version, 1)
        const page = yield* alice.JobList({ queue })
        assert.strictEqual("pagination" in page ? page.pagination.total : -1, 3)
        const canceled = yield* alice.JobCancel({ id: batch[0]!.id })
        assert.strictEqual(canceled.status, "canceled")
        const deleted = yield* alice.JobDelete({ id: batch[1]!.id })
        assert.strictEqual(deleted.status, "deleted")
        // the remaining job runs through the worker RPCs while the user waits
        const waiting = yield* Effect.fork(alice.JobWait({ id: ref.id }))
        const polling = yield* Effect.fork(alice.JobGet({ id: ref.id, wait: Duration.seconds(30) }))
        const claimed = yield* worker.WorkerClaim({ workerId: "w:rw", queues: [queue], limit: 5 })
        assert.deepStrictEqual(claimed.map((j) => j.id), [ref.id])
        assert.deepStrictEqual((yield* worker.WorkerHeartbeat({ workerId: "w:rw" })).cancelRequested, [])
        yield* worker.JobUpdate({ id: ref.id, workerId: "w:rw", status: "running" })
        const ack = yield* worker.JobProgress({ id: ref.id, workerId: "w:rw", percent: 50 })
        assert.isTrue(ack.persisted)
        yield* worker.JobUpdate({ id: ref.id, workerId: "w:rw", status: "completed", result: { ok: true } })
        const outcome = yield* Fiber.join(waiting)
        assert.strictEqual(outcome.status, "completed")
        assert.deepStrictEqual(outcome.result, { ok: true })
        assert.strictEqual((yield* Fiber.join(polling)).status, "completed")
        const all = yield* alice.JobWaitAll({ ids: [ref.id, batch[0]!.id, batch[1]!.id] })
        assert.deepStrictEqual(all.map((o) => o.status), ["completed", "canceled", "deleted"])
        const first = yield* alice.JobWaitFirst({ ids: [batch[0]!.id, ref.id] })
        assert.isTrue(first.terminal)
      }))

    it.scoped("typed errors: Unauthorized, JobNotFound for another user's job, InvalidInput, Forbidden, 409s", () =>
      Effect.gen(function*() {
        const alice = yield* clientAs(yield* token("alice"))
        const bob = yield* clientAs(yield* token("bob"))
        const nobody = yield* clientAs(undefined)
        const forged = yield* clientAs("not-a-token")
        const worker = yield* clientAs(yield* token("w", ["worker"]))
        const queue = uniqueQueue("rpc-err")
        const ref = yield* alice.JobEnqueue({ name: "mine", queue })
        assert.strictEqual((yield* Effect.flip(nobody.JobGet({ id: ref.id })))._tag, "Unauthorized")
        assert.strictEqual((yield* Effect.flip(forged.JobList({})))._tag, "Unauthorized")
        for (
          const attempt of [
            bob.JobGet({ id: ref.id }),
            bob.JobStatus({ id: ref.id }),
            bob.JobCancel({ id: ref.id }),
            bob.JobDelete({ id: ref.id }),
            bob.JobWait({ id: ref.id }),
            bob.JobWaitAll({ ids: [ref.id] }),
            Stream.runDrain(bob.JobWatch({ id: ref.id }))
          ] as const
        ) assert.strictEqual((yield* Effect.flip(attempt as Effect.Effect<unknown, { readonly _tag: string }>))._tag, "JobNotFound")
        assert.strictEqual((yield* Effect.flip(alice.JobList({ limit: 1000 })))._tag, "InvalidInput")
        const forbidden = yield* Effect.flip(alice.WorkerClaim({ workerId: "x", queues: [queue] }))
        assert.deepInclude({ ...forbidden }, { _tag: "Forbidden", required: "worker" })
        yield* worker.WorkerClaim({ workerId: "w:w1", queues: [queue] })
        const holder = yield* Effect.flip(worker.JobUpdate({ id: ref.id, workerId: "w:w2", status: "completed" }))
        assert.strictEqual(holder._tag, "NotJobHolder")
        yield* worker.JobProgress({ id: ref.id, workerId: "w:w1", percent: 60, force: true })
        const back = yield* Effect.flip(worker.JobProgress({ id: ref.id, workerId: "w:w1", percent: 20 }))
        assert.deepInclude({ ...back }, { _tag: "ProgressRegression", current: 60, requested: 20 })
        yield* worker.JobUpdate({ id: ref.id, workerId: "w:w1", status: "completed" })
        const twice = yield* Effect.flip(worker.JobUpdate({ id: ref.id, workerId: "w:w1", status: "completed" }))
        assert.strictEqual(twice._tag, "InvalidTransition")
        assert.strictEqual((yield* Effect.flip(worker.WorkerHeartbeat({ workerId: "w:never-seen" })))._tag, "WorkerNotFound")
        // a worker lets go of a job: back to the queue, its attempt not used up
        const other = yield* alice.JobEnqueue({ name: "released", queue })
        yield* worker.WorkerClaim({ workerId: "w:w3", queues: [queue], start: true })
        const released = yield* worker.WorkerRelease({ workerId: "w:w3", ids: [other.id] })
        assert.deepStrictEqual(released.released.map((r) => [r.id, r.status]), [[other.id, "pending"]])
        assert.deepInclude({ ...(yield* alice.JobGet({ id: other.id })) }, { status: "pending", attempt: 0 })
      }))

    it.scoped("JobWatch streams a job's progress as it happens; EventsWatch streams the caller's events", () =>
      Effect.gen(function*() {
        const carol = yield* clientAs(yield* token("carol"))
        const worker = yield* clientAs(yield* token("w", ["worker"]))
        const queue = uniqueQueue("rpc-watch")
        const ref = yield* carol.JobEnqueue({ name: "watched", queue })
        const seen = yield* Ref.make<Array<{ version: number; progress: number; status: string }>>([])
        const watching = yield* Effect.fork(
          carol.JobWatch({ id: ref.id }).pipe(
            Stream.runForEach((e) => Ref.update(seen, (xs) => [...xs, { version: e.version, progress: e.progress, status: e.status }]))
          )
        )
        const mine = yield* Ref.make<Array<StreamedEvent>>([])
        yield* Effect.fork(carol.EventsWatch({ queue }).pipe(Stream.runForEach((e) => Ref.update(mine, (xs) => [...xs, e]))))
        // the stream is open once it delivers a marker enqueued after it was asked for (again, until one arrives)
        for (let i = 0; i < 50; i++) {
          const marker = yield* carol.JobEnqueue({ name: "marker", queue })
          const arrived = yield* eventually(Ref.get(mine), (xs) => xs.some((x) => x.event.jobId === marker.id)).pipe(
            Effect.timeout("1 second"),
            Effect.option
          )
          if (arrived._tag === "Some") break
        }
        yield* worker.WorkerClaim({ workerId: "w:ww", queues: [queue] })
        yield* worker.JobUpdate({ id: ref.id, workerId: "w:ww", status: "running" })
        // each report arrives before the next is made: the stream is incremental
        for (const percent of [25, 50, 75]) {
          yield* worker.JobProgress({ id: ref.id, workerId: "w:ww", percent, force: true })
          yield* eventually(Ref.get(seen), (xs) => xs.some((x) => x.progress === percent))
        }
        yield* worker.JobUpdate({ id: ref.id, workerId: "w:ww", status: "completed", result: 1 })
        yield* Fiber.join(watching).pipe(Effect.timeout("20 seconds"))
        const events = yield* Ref.get(seen)
        assert.deepStrictEqual(events.map((e) => e.version), [1, 2, 3, 4, 5, 6, 7])
        assert.strictEqual(events.at(-1)!.status, "completed")
        const streamed = (yield* eventually(Ref.get(mine), (xs) => xs.some((x) => x.event.jobId === ref.id && x.event.version === 7)))
          .filter((s) => s.event.jobId === ref.id)
        // every event of the job after the stream opened (its enqueue, version 1, may come before: "now" is the oldest
        // transaction still running), in order, once
        assert.deepStrictEqual(streamed.map((s) => s.event.version).filter((v) => v >= 2), [2, 3, 4, 5, 6, 7])
        for (const s of streamed) assert.match(s.cursor, /^\d+\./)
      }))

    it.effect("malformed frames are 400 InvalidInput naming them, never a 500 or a defect; the server goes on serving", () =>
      Effect.gen(function*() {
        const alice = yield* token("rpc-frames")
        const frame = (fields: Record<string, unknown>) =>
          `${JSON.stringify({ _tag: "Request", id: "1", tag: "JobList", payload: {}, headers: [], ...fields })}\n`
        const cases: ReadonlyArray<readonly [string, string]> = [
          // headers that are not a list of pairs threw inside the RPC server: an empty 500
          ["headers {}", frame({ headers: {} })],
          ["headers null", frame({ headers: null })],
          ["headers [1]", frame({ headers: [1] })],
          ["headers [[\"a\"]]", frame({ headers: [["a"]] })],
          ["headers [[\"a\", 1]]", frame({ headers: [["a", 1]] })],
          ["no headers", frame({ headers: undefined })],
          // the rest answered defects naming JavaScript errors
          ["id abc", frame({ id: "abc" })],
          ["id 5", frame({ id: 5 })],
          ["id \"\"", frame({ id: "" })],
          ["unknown tag", frame({ tag: "Nope" })],
          ["tag 5", frame({ tag: 5 })],
          ["spanId {}", frame({ spanId: {} })],
          ["_tag Bogus", `{"_tag":"Bogus"}\n`],
          ["Ack without an id", `{"_tag":"Ack","requestId":"x"}\n`],
          ["not JSON", "garbage\n"],
          ["a number", "42\n"],
          ["an array", "[]\n"],
          ["null", "null\n"],
          ["nested 10,000 deep", `${nested(10_000)}\n`],
          ["a good frame, then garbage", `${frame({})}{oops\n`]
        ]
        const problems: Array<string> = []
        for (const [label, body] of cases) {
          const answer = yield* post(alice, body)
          const error = answer.frames[0]
          if (answer.status !== 400 || error?._tag !== "InvalidInput" || !String(error.field).startsWith("frames[")) {
            problems.push(`${label} => ${answer.status} ${answer.text.slice(0, 300)}`)
          }
        }
        if (problems.length > 0) assert.fail(`${problems.length} of ${cases.length} misbehaved:\n${problems.join("\n")}`)
        const ok = yield* post(alice, frame({}))
        assert.strictEqual(ok.status, 200)
        assert.strictEqual(ok.frames[0]?.exit?._tag, "Success", ok.text)
      }))

    it.scoped("a payload that does not decode, or text PostgreSQL cannot store, is the RPC's typed InvalidInput naming the field", () =>
      Effect.gen(function*() {
        const alice = yield* token("rpc-payloads")
        const worker = yield* token("rpc-payloads-worker", ["worker"])
        const queue = uniqueQueue("rpc-payload")
        const cases: ReadonlyArray<readonly [string, string, string, string]> = [
          ["name 5", alice, request("JobEnqueue", { name: 5, queue }), "name"],
          ["no payload", alice, request("JobEnqueue", undefined), "payload"],
          ["batch jobs[1].name", alice, request("JobEnqueueBatch", { jobs: [{ name: "a", queue }, { name: 5 }] }), "jobs[1].name"],
          ["empty name", alice, request("JobEnqueue", { name: "", queue }), "name"],
          ["id nope", alice, request("JobGet", { id: "nope" }), "id"],
          ["release ids[0] nope", worker, request("WorkerRelease", { workerId: "rpc-payloads-worker", ids: ["nope"] }), "ids[0]"],
          ["name of 201 characters", alice, request("JobEnqueue", { name: "n".repeat(201), queue }), "name"],
          ["priority 1.5", alice, request("JobEnqueue", { name: "a", queue, priority: 1.5 }), "priority"],
          ["limit \"x\"", alice, request("JobList", { limit: "x" }), "limit"],
          ["a stream's id 5", alice, request("JobWatch", { id: 5 }), "id"],
          ["heartbeatSeconds 1e13", worker, request("WorkerClaim", { workerId: "rpc-payloads-worker", queues: [queue], heartbeatSeconds: 1e13 }), "heartbeatSeconds"],
          [
            "percent 5e-324",
            worker,
            `{"_tag":"Request","id":"1","tag":"JobProgress","payload":{"id":"01a23391-d45a-704a-a7ac-44b4fa95459c","workerId":"rpc-payloads-worker","percent":5e-324},"headers":[]}\n`,
            "percent"
          ],
          // a lone surrogate passed the schema and reached PostgreSQL: a defect naming SqlError
          ["name \\ud800", alice, `{"_tag":"Request","id":"1","tag":"JobEnqueue","payload":{"name":"\\ud800","queue":${JSON.stringify(queue)}},"headers":[]}\n`, "name"],
          ["priority of 1 MB", alice, request("JobEnqueue", { name: "a", queue, priority: "p".repeat(1024 * 1024) }), "priority"]
        ]
        const problems: Array<string> = []
        for (const [label, bearer, body, field] of cases) {
          const answer = yield* post(bearer, body)
          const error = failureOf(answer.frames[0])
          if (answer.status !== 200 || error?._tag !== "InvalidInput" || error.field !== field || answer.text.length > 2000) {
            problems.push(`${label} => ${answer.status} ${answer.text.slice(0, 300)}`)
          }
        }
        if (problems.length > 0) assert.fail(`${problems.length} of ${cases.length} misbehaved:\n${problems.join("\n")}`)
        // a refused request beside a good one: both answered, the good one as usual
        const both = yield* post(alice, `${request("JobEnqueue", { name: 5 }, "1")}${request("JobList", { queue }, "2")}`)
        assert.deepStrictEqual(both.frames.map((f) => [f.requestId, f.exit?._tag]), [["1", "Failure"], ["2", "Success"]], both.text)
        assert.strictEqual(failureOf(both.frames[0])?.field, "name")
        // the typed client holds the same schemas: it refuses the payload before sending it
        const client = yield* clientAs(alice)
        assert.isTrue(yield* refusedLocally(client.JobEnqueue({ name: "\ud800", queue })))
        const listed = yield* client.JobList({ queue })
        assert.strictEqual("pagination" in listed ? listed.pagination.total : -1, 0)
      }))

    it.scoped("a claim answers every job it committed: one whose stored payload cannot be encoded fails undeliverable, the others reach the worker", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const mallory = yield* token("rpc-poison")
        const bob = yield* token("rpc-bystander")
        const worker = yield* clientAs(yield* token("rpc-poison-worker", ["worker"]))
        const workerToken = yield* token("rpc-poison-worker", ["worker"])
        for (const via of ["rpc", "http"] as const) {
          const queue = uniqueQueue(`poison-${via}`)
          const enqueue = (bearer: string, name: string, priority: number) =>
            Effect.map(raw("POST", "/v1/jobs", { token: bearer, json: { name, queue, priority } }), (answer) => answer.body.id as string)
          // first in line, with a payload nested as only the limit now prevents (stored before it, or by another path)
          const poisoned = yield* enqueue(mallory, "poisoned", 10)
          yield* sql.unsafe(`UPDATE "${schema}".jobs SET payload = $1::jsonb WHERE id = $2`, [nested(10_000), poisoned])
          const others = [yield* enqueue(bob, "one", 3), yield* enqueue(bob, "two", 2), yield* enqueue(bob, "three", 1)]
          const claimed = via === "rpc"
            ? (yield* worker.WorkerClaim({ workerId: `rpc-poison-worker:w-poison-${via}`, queues: [queue], limit: 4 })).map((job) => job.id)
            : yield* Effect.map(
              raw("POST", `/v1/workers/rpc-poison-worker:w-poison-${via}/claim`, { token: workerToken, json: { queues: [queue], limit: 4 } }),
              (answer) => {
                assert.strictEqual(answer.status, 200, JSON.stringify(answer.body)?.slice(0, 300))
                return (answer.body.jobs as Array<{ id: string }>).map((job) => job.id)
              }
            )
          assert.deepStrictEqual(claimed, others, via)
          const rows = yield* sql.unsafe<{ id: string; status: string; errorCode: string | null; workerId: string | null }>(
            `SELECT id, status, error_code AS "errorCode", worker_id AS "workerId" FROM "${schema}".jobs WHERE queue = $1 ORDER BY priority DESC`,
            [queue]
          )
          assert.deepStrictEqual(rows.map((row) => [row.id, row.status, row.errorCode]), [
            [poisoned, "failed", "undeliverable"],
            ...others.map((id) => [id, "claimed", null])
          ], via)
        }
      }))

    it.scoped("webhook endpoints over RPC: create, list, get, update, rotate, deliveries, delete; another user's is WebhookNotFound", () =>
      Effect.gen(function*() {
        const dana = yield* clientAs(yield* token("dana"))
        const erin = yield* clientAs(yield* token("erin"))
        const created = yield* dana.WebhookCreate({ url: "https://93.184.215.14/rpc-hook", eventTypes: ["completed"] })
        assert.match(created.secret, /^whsec_/)
        assert.deepStrictEqual((yield* dana.WebhookList()).webhooks.map((w) => w.id), [created.id])
        assert.strictEqual((yield* dana.WebhookGet({ id: created.id })).url, "https://93.184.215.14/rpc-hook")
        assert.isFalse((yield* dana.WebhookUpdate({ id: created.id, active: false })).active)
        assert.notStrictEqual((yield* dana.WebhookRotateSecret({ id: created.id })).secret, created.secret)
        assert.strictEqual((yield* dana.WebhookDeliveries({ id: created.id })).pagination.total, 0)
        assert.strictEqual((yield* Effect.flip(erin.WebhookGet({ id: created.id })))._tag, "WebhookNotFound")
        assert.strictEqual((yield* Effect.flip(dana.WebhookCreate({ url: "http://10.0.0.1/x", eventTypes: ["all"] })))._tag, "WebhookTargetRefused")
        assert.isTrue(yield* refusedLocally(dana.WebhookCreate({ url: "https://93.184.215.14/x", eventTypes: [] })))
        yield* dana.WebhookDelete({ id: created.id })
        assert.deepStrictEqual((yield* dana.WebhookList()).webhooks, [])
      }))
  })
})
