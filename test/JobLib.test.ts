import { FetchHttpClient, HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Fiber, Schema } from "effect"
import { Webhook } from "standardwebhooks"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobEvent } from "../src/Domain/JobEvent.js"
import { digestOf } from "../src/JobLib.js"
import * as Client from "../src/client.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { receiver } from "./support/receiver.js"

const parseJson = Schema.decodeUnknownSync(Schema.parseJson())
const rotate = {
  type: "object",
  properties: { angle: { type: "number" }, axis: { enum: ["x", "y", "z"] } },
  required: ["angle"],
  additionalProperties: false
}
/** The same schema, its keys in another order: an equal JSON value. */
const rotateReordered = { additionalProperties: false, required: ["angle"], properties: { axis: { enum: ["x", "y", "z"] }, angle: { type: "number" } }, type: "object" }
const energy = { type: "object", properties: { method: { type: "string", minLength: 1 } } }

/** `get` until `holds` says so: bounded (20 s), for state another fiber or the reaper changes. */
const until = <A, R>(get: Effect.Effect<A, never, R>, holds: (a: A) => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      const a = yield* get
      if (holds(a)) return a
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.die(new Error(`${what}: not after 20 s`))
  })

describe("job types and rooms over HTTP", () => {
  // no safety net: a waiting claim that missed its wake-up would answer only when its wait ends
  layer(serverLayer({ webhookAllowPrivate: true, webhookRetrySchedule: ["100 millis"], refreshInterval: null }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("the joblib flow: register in a room and @global, re-register, list, push, claim, run, report and complete while the creator long-polls", () =>
      Effect.gen(function*() {
        const room = uniqueQueue("lab")
        const alice = yield* token("alice")
        const bob = yield* token("bob")
        const carol = yield* token("carol")
        const svc = yield* token("svc", ["worker"])
        const rooms = `/v1/joblib/rooms/${room}`

        // register a type in the room, and one in @global (worker role)
        const created = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Rotate", schema: rotate } })
        assert.strictEqual(created.status, 201, JSON.stringify(created.body))
        assert.deepStrictEqual(
          [created.body.outcome, created.body.workerId, created.body.jobType.room, created.body.jobType.category, created.body.jobType.shortName],
          ["created", "alice", room, "modifiers", "Rotate"]
        )
        assert.strictEqual(created.body.jobType.schemaDigest, digestOf(rotate))
        const globalName = `public:analysis:Energy${room.replace(/[^A-Za-z0-9]/g, "")}`
        const global = yield* raw("PUT", "/v1/joblib/rooms/@global/jobs", { token: svc, json: { name: globalName, schema: energy } })
        assert.deepStrictEqual([global.status, global.body.jobType.room], [201, "@global"])
        const notWorker = yield* raw("PUT", "/v1/joblib/rooms/@global/jobs", { token: bob, json: { name: globalName, schema: energy } })
        assert.deepStrictEqual([notWorker.status, notWorker.body._tag], [403, "Forbidden"])

        // the same schema (another key order) answers 200; another schema is 409 with both digests
        const again = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Rotate", schema: rotateReordered } })
        assert.deepStrictEqual([again.status, again.body.outcome], [200, "existing"])
        const other = { ...rotate, required: ["angle", "axis"] }
        const conflict = yield* raw("PUT", `${rooms}/jobs`, { token: bob, json: { name: "public:modifiers:Rotate", schema: other } })
        assert.deepStrictEqual([conflict.status, conflict.body._tag], [409, "SchemaConflict"])
        assert.deepStrictEqual([conflict.body.registeredDigest, conflict.body.requestedDigest], [digestOf(rotate), digestOf(other)])

        // names and schemas are checked
        const badName = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "modifiers:Rotate", schema: rotate } })
        assert.strictEqual(badName.status, 400)
        assert.include(JSON.stringify(badName.body), "<public|private>:<category>:<name>")
        const badSchema = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Bad", schema: { type: "nope" } } })
        assert.deepStrictEqual([badSchema.status, badSchema.body._tag, badSchema.body.field], [400, "InvalidInput", "schema"])
        const redos = { type: "object", properties: { id: { type: "string", pattern: "^(a+)+$" } } }
        const slow = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Slow", schema: redos } })
        assert.deepStrictEqual([slow.status, slow.body.field], [400, "schema"])
        assert.include(slow.body.message, "exponential")
        const keyed = { type: "object", patternProperties: { "(x+x+)+y": {} } }
        assert.strictEqual((yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Keyed", schema: keyed } })).status, 400)
        const data = { type: "object", properties: { pattern: { type: "string", pattern: "^[a-z]+$" } }, examples: [{ pattern: "(a+)+" }] }
        const fine = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "private:modifiers:Patterned", schema: data } })
        assert.strictEqual(fine.status, 201, "a safe pattern, and a pattern-looking value in examples, register")
        const mismatch = yield* raw("POST", `${rooms}/tasks/private:modifiers:Patterned`, { token: alice, json: { pattern: "ABC" } })
        assert.deepStrictEqual([mismatch.status, mismatch.body.errors[0].path], [422, "/pattern"])
        const badRoom = yield* raw("GET", "/v1/joblib/rooms/a:b/jobs", { token: alice })
        assert.strictEqual(badRoom.status, 400)

        // a room lists its own and @global's; @global only its own
        const listed = yield* raw("GET", `${rooms}/jobs`, { token: bob })
        assert.deepStrictEqual(listed.body.items.map((t: { name: string }) => t.name), ["public:modifiers:Rotate", globalName])
        const globals = yield* raw("GET", "/v1/joblib/rooms/@global/jobs", { token: bob })
        assert.isTrue(globals.body.items.some((t: { name: string }) => t.name === globalName))
        assert.isFalse(globals.body.items.some((t: { name: string }) => t.name === "public:modifiers:Rotate"))
        const detail = yield* raw("GET", `${rooms}/jobs/${globalName}`, { token: bob })
        assert.deepStrictEqual([detail.status, detail.body.room, detail.body.workers], [200, "@global", 1])
        const notGlobal = yield* raw("GET", "/v1/joblib/rooms/@global/jobs/public:modifiers:Rotate", { token: bob })
        assert.deepStrictEqual([notGlobal.status, notGlobal.body._tag], [404, "JobTypeNotFound"])

        // a private type is its registrant's alone
        const secret = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "private:modifiers:Secret", schema: {} } })
        assert.strictEqual(secret.status, 201)
        const bobsList = yield* raw("GET", `${rooms}/jobs`, { token: bob })
        assert.isFalse(bobsList.body.items.some((t: { name: string }) => t.name === "private:modifiers:Secret"))

        // pushes: valid, invalid (paths), unknown type, another user's private type
        const pushed = yield* raw("POST", `${rooms}/tasks/public:modifiers:Rotate?priority=5`, { token: bob, json: { angle: 90, axis: "z" } })
        assert.strictEqual(pushed.status, 201, JSON.stringify(pushed.body))
        assert.deepStrictEqual(
          [pushed.body.status, pushed.body.queue, pushed.body.name, pushed.body.tracking, pushed.body.priority, pushed.body.maxAttempts],
          ["pending", room, "public:modifiers:Rotate", "task", 5, 1]
        )
        const taskId = pushed.body.id as string
        const invalid = yield* raw("POST", `${rooms}/tasks/public:modifiers:Rotate`, { token: bob, json: { angle: "ninety", axis: "w", extra: 1 } })
        assert.deepStrictEqual([invalid.status, invalid.body._tag], [422, "PayloadInvalid"])
        const paths = invalid.body.errors.map((e: { path: string }) => e.path)
        assert.includeMembers(paths, ["/angle", "/axis", "/"])
        const missing = yield* raw("POST", `${rooms}/tasks/public:modifiers:Rotate`, { token: bob, json: {} })
        assert.deepStrictEqual([missing.status, missing.body.errors[0].path], [422, "/angle"])
        const unknown = yield* raw("POST", `${rooms}/tasks/public:modifiers:Nope`, { token: bob, json: {} })
        assert.deepStrictEqual([unknown.status, unknown.body._tag], [404, "JobTypeNotFound"])
        const foreign = yield* raw("POST", `${rooms}/tasks/private:modifiers:Secret`, { token: bob, json: {} })
        assert.deepStrictEqual([foreign.status, foreign.body._tag], [404, "JobTypeNotFound"])
        const toGlobal = yield* raw("POST", `/v1/joblib/rooms/@global/tasks/${globalName}`, { token: bob, json: {} })
        assert.strictEqual(toGlobal.status, 400)

        // an ordinary worker never claims a task, whatever queue it names
        const core = yield* raw("POST", "/v1/workers/svc/claim", { token: svc, json: { queues: [room], limit: 10 } })
        assert.deepStrictEqual(core.body.jobs, [])

        // the creator long-polls while alice's client claims, runs, reports and completes
        const poll = yield* raw("GET", `/v1/joblib/tasks/${taskId}`, { token: bob, headers: { prefer: "wait=30" } }).pipe(Effect.fork)
        const laptop = yield* raw("PUT", `${rooms}/jobs`, { token: alice, json: { name: "public:modifiers:Rotate", schema: rotate, workerId: "alice:laptop" } })
        assert.deepStrictEqual([laptop.status, laptop.body.jobType.workers], [200, 2])
        const claimed = yield* raw("POST", "/v1/joblib/tasks/claim", { token: alice, json: { workerId: "alice:laptop", rooms: [room], waitSeconds: 5 } })
        assert.strictEqual(claimed.status, 200, JSON.stringify(claimed.body))
        assert.deepStrictEqual(claimed.body.tasks.map((t: { id: string }) => t.id), [taskId])
        assert.deepStrictEqual(claimed.body.tasks[0].payload, { angle: 90, axis: "z" })
        // visible to its creator, its holder and admins; nobody else
        assert.strictEqual((yield* raw("GET", `/v1/joblib/tasks/${taskId}`, { token: alice })).status, 200)
        assert.strictEqual((yield* raw("GET", `/v1/joblib/tasks/${taskId}`, { token: carol })).status, 404)
        const asBob = yield* raw("POST", "/v1/joblib/tasks/claim", { token: alice, json: { workerId: "bob" } })
        assert.deepStrictEqual([asBob.status, asBob.body._tag], [403, "Forbidden"])
        const ghost = yield* raw("POST", "/v1/joblib/tasks/claim", { token: alice, json: { workerId: "alice:ghost" } })
        assert.deepStrictEqual([ghost.status, ghost.body._tag], [404, "WorkerNotFound"])

        const task = `/v1/joblib/tasks/${taskId}`
        const running = yield* raw("PATCH", task, { token: alice, json: { workerId: "alice:laptop", status: "running" } })
        assert.deepStrictEqual([running.status, running.body.status], [200, "running"])
        const progress = yield* raw("PATCH", task, { token: alice, json: { workerId: "alice:laptop", progress: { percent: 50, step: "rotating" } } })
        assert.strictEqual(progress.status, 200, JSON.stringify(progress.body))
        const notHolder = yield* raw("PATCH", task, { token: alice, json: { workerId: "alice", status: "completed" } })
        assert.deepStrictEqual([notHolder.status, notHolder.body._tag], [409, "NotJobHolder"])
        const beat = yield* raw("PATCH", "/v1/joblib/workers/alice:laptop", { token: alice })
        assert.deepStrictEqual([beat.status, beat.body.cancelRequested], [200, []])
        const done = yield* raw("PATCH", task, { token: alice, json: { workerId: "alice:laptop", status: "completed", result: { frames: 12 } } })
        assert.deepStrictEqual([done.status, done.body.status], [200, "completed"])
        const polled = yield* Fiber.join(poll)
        assert.deepStrictEqual([polled.status, polled.body.status, polled.body.result], [200, "completed", { frames: 12 }])
        assert.strictEqual(polled.headers["preference-applied"], "wait=30")
        const events = yield* raw("GET", `/v1/jobs/${taskId}/events`, { token: bob })
        const types = String(events.body).split("\n").filter((line) => line.startsWith("data: "))
          .map((line) => (parseJson(line.slice(6)) as JobEvent).type)
        assert.includeMembers(types, ["job.progress", "job.completed"])

        // a holder that stops a task of its own accord: cancelled is canceled
        const second = yield* raw("POST", `${rooms}/tasks/public:modifiers:Rotate`, { token: bob, json: { angle: 1 } })
        const next = yield* raw("POST", "/v1/joblib/tasks/claim", { token: alice, json: { workerId: "alice:laptop", waitSeconds: 5 } })
        assert.deepStrictEqual(next.body.tasks.map((t: { id: string }) => t.id), [second.body.id])
        const cancelled = yield* raw("PATCH", `/v1/joblib/tasks/${second.body.id}`, { token: alice, json: { workerId: "alice:laptop", status: "cancelled" } })
        assert.deepStrictEqual([cancelled.status, cancelled.body.status], [200, "canceled"])
        // a failure takes a message alone
        const third = yield* raw("POST", `${rooms}/tasks/public:modifiers:Rotate`, { token: bob, json: { angle: 2 } })
        yield* raw("POST", "/v1/joblib/tasks/claim", { token: alice, json: { workerId: "alice:laptop", waitSeconds: 5 } })
        const failed = yield* raw("PATCH", `/v1/joblib/tasks/${third.body.id}`, { token: alice, json: { workerId: "alice:laptop", status: "failed", error: "no GPU" } })
        assert.deepStrictEqual([failed.status, failed.body.status, failed.body.error.message], [200, "failed", "no GPU"])
      }))

    it.scoped("a claim waits for a task without polling, and a task's completion reaches a waiter, an SSE stream and a webhook like any job's", () =>
      Effect.gen(function*() {
        const room = uniqueQueue("hooks")
        const frank = yield* token("frank")
        const gina = yield* token("gina")
        const target = yield* receiver()
        const hook = yield* raw("POST", "/v1/webhooks", { token: gina, json: { url: target.url, eventTypes: ["completed"] } })
        assert.strictEqual(hook.status, 201, JSON.stringify(hook.body))
        yield* raw("PUT", `/v1/joblib/rooms/${room}/jobs`, { token: frank, json: { name: "public:render:Frame", schema: { type: "object" }, workerId: "frank:gpu" } })
        // the claim asks before the task exists: it waits, and the push wakes it
        const claim = yield* raw("POST", "/v1/joblib/tasks/claim", { token: frank, json: { workerId: "frank:gpu", waitSeconds: 30 } }).pipe(Effect.fork)
        const pushed = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/public:render:Frame`, { token: gina, json: { frame: 1 } })
        const taskId = pushed.body.id as string
        const waiter = yield* (yield* CompletionWatcher).waitFor(taskId as never).pipe(Effect.fork)
        const sse = yield* raw("GET", `/v1/jobs/${taskId}/events`, { token: gina }).pipe(Effect.fork)
        // woken by the push, long before its 30 s wait ends
        const claimed = yield* Fiber.join(claim).pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(claimed.body.tasks.map((t: { id: string }) => t.id), [taskId])
        yield* raw("PATCH", `/v1/joblib/tasks/${taskId}`, { token: frank, json: { workerId: "frank:gpu", status: "completed", result: { png: "f1.png" } } })
        const outcome = yield* Fiber.join(waiter)
        assert.deepStrictEqual([outcome.status, outcome.result], ["completed", { png: "f1.png" }])
        const stream = yield* Fiber.join(sse)
        const last = String(stream.body).split("\n").filter((line) => line.startsWith("data: ")).at(-1)!
        assert.strictEqual((parseJson(last.slice(6)) as JobEvent).type, "job.completed")
        // a claim that waits while its worker registers another type wakes for that type's tasks
        const later = yield* raw("POST", "/v1/joblib/tasks/claim", { token: frank, json: { workerId: "frank:gpu", waitSeconds: 30 } }).pipe(Effect.fork)
        yield* raw("PUT", `/v1/joblib/rooms/${room}/jobs`, { token: frank, json: { name: "public:render:Video", schema: {}, workerId: "frank:gpu" } })
        const video = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/public:render:Video`, { token: gina, json: {} })
        const woken = yield* Fiber.join(later).pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(woken.body.tasks.map((t: { id: string }) => t.id), [video.body.id])

        const [delivery] = yield* target.until(1)
        const body = JSON.parse(delivery!.body) as { type: string; data: { jobId: string; result: unknown } }
        new Webhook(hook.body.secret).verify(delivery!.body, delivery!.headers)
        assert.deepStrictEqual([body.type, body.data.jobId, body.data.result], ["job.completed", taskId, { png: "f1.png" }])
      }))
  })
})

describe("job types and rooms over RPC", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("the same journey through the RPC group, with its typed errors", () =>
      Effect.gen(function*() {
        const address = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
        const baseUrl = `http://127.0.0.1:${address.port}`
        const rpcAs = (bearer: string) => Client.rpcClient({ baseUrl, token: bearer }).pipe(Effect.provide(FetchHttpClient.layer))
        const room = uniqueQueue("rpc-room")
        const hana = yield* rpcAs(yield* token("hana"))
        const ivan = yield* rpcAs(yield* token("ivan"))
        const registered = yield* hana.JobTypeRegister({ roomId: room, name: "public:fit:Curve", schema: { type: "object", required: ["x"] }, workerId: "hana:1" })
        assert.deepStrictEqual([registered.outcome, registered.workerId], ["created", "hana:1"])
        const conflict = yield* Effect.flip(hana.JobTypeRegister({ roomId: room, name: "public:fit:Curve", schema: { type: "array" } }))
        assert.strictEqual(conflict._tag, "SchemaConflict")
        const listed = yield* ivan.JobTypeList({ roomId: room })
        assert.deepStrictEqual(listed.items.map((t) => t.name), ["public:fit:Curve"])
        assert.strictEqual((yield* ivan.JobTypeGet({ roomId: room, jobName: "public:fit:Curve" })).room, room)
        const invalid = yield* Effect.flip(ivan.TaskPush({ roomId: room, jobName: "public:fit:Curve", payload: {} }))
        assert.strictEqual(invalid._tag, "PayloadInvalid")
        const missing = yield* Effect.flip(ivan.TaskPush({ roomId: room, jobName: "public:fit:Nope", payload: {} }))
        assert.strictEqual(missing._tag, "JobTypeNotFound")
        const task = yield* ivan.TaskPush({ roomId: room, jobName: "public:fit:Curve", payload: { x: [1, 2] }, priority: 3 })
        const waited = yield* ivan.TaskGet({ taskId: task.id, wait: Duration.seconds(30) }).pipe(Effect.fork)
        const claimed = yield* hana.TaskClaim({ workerId: "hana:1", wait: Duration.seconds(5) })
        assert.deepStrictEqual(claimed.tasks.map((t) => t.id), [task.id])
        const refused = yield* Effect.flip(hana.TaskClaim({ workerId: "ivan" }))
        assert.strictEqual(refused._tag, "Forbidden")
        yield* hana.TaskUpdate({ taskId: task.id, workerId: "hana:1", status: "running", progress: { percent: 30 } })
        assert.deepStrictEqual((yield* hana.TaskWorkerHeartbeat({ workerId: "hana:1" })).cancelRequested, [])
        const done = yield* hana.TaskUpdate({ taskId: task.id, workerId: "hana:1", status: "completed", result: { a: 1 } })
        assert.strictEqual(done.status, "completed")
        const seen = yield* Fiber.join(waited)
        assert.deepStrictEqual([seen.status, seen.result], ["completed", { a: 1 }])
        yield* hana.JobTypeUnregister({ roomId: room, jobName: "public:fit:Curve", workerId: "hana:1" })
        assert.strictEqual((yield* ivan.JobTypeGet({ roomId: room, jobName: "public:fit:Curve" })).workers, 0)
      }))
  })
})

describe("the registry's rules in SQL", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("job_type_register: a user's live types are bounded (a new one past the bound writes nothing), linking to an existing type is not bounded", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const register = (room: string, name: string, by: string) =>
          sql.unsafe<{ outcome: string }>(
            `SELECT outcome FROM "${schema}".job_type_register($1, $2, 'public', 'c', 'n', '', '{}'::jsonb, 'sha256:x', 1,
              $3, $3, 1000, 1500, 2, NULL)`,
            [room, name, by]
          ).pipe(Effect.map((rows) => rows[0]!.outcome))
        assert.strictEqual(yield* register("r1", "public:c:a", "quota-user"), "created")
        assert.strictEqual(yield* register("r1", "public:c:b", "quota-user"), "created")
        assert.strictEqual(yield* register("r1", "public:c:c", "quota-user"), "limit")
        assert.strictEqual(yield* register("r1", "public:c:a", "quota-user"), "existing", "registering one it has again")
        assert.strictEqual(yield* register("r1", "public:c:a", "other-user"), "existing", "another user's link")
        const [count] = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".job_types`)
        assert.strictEqual(count!.n, 2, "the refused registration wrote nothing")
      }))
  })
})

describe("job library workers that go silent", () => {
  layer(serverLayer({ reaper: true, workerTimeout: "1 second" }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("a worker that stops heartbeating: its running task ends failed, then its orphaned type is removed, and revived by a new registration", () =>
      Effect.gen(function*() {
        const room = uniqueQueue("silent")
        const dave = yield* token("dave")
        const erin = yield* token("erin")
        const typePath = `/v1/joblib/rooms/${room}/jobs/public:modifiers:Slow`
        const registered = yield* raw("PUT", `/v1/joblib/rooms/${room}/jobs`, { token: dave, json: { name: "public:modifiers:Slow", schema: { type: "object" }, workerId: "dave:w" } })
        assert.strictEqual(registered.status, 201)
        const pushed = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/public:modifiers:Slow`, { token: erin, json: {} })
        const claimed = yield* raw("POST", "/v1/joblib/tasks/claim", { token: dave, json: { workerId: "dave:w", heartbeatSeconds: 0.2 } })
        assert.lengthOf(claimed.body.tasks, 1)
        yield* raw("PATCH", `/v1/joblib/tasks/${pushed.body.id}`, { token: dave, json: { workerId: "dave:w", status: "running" } })
        // no heartbeat: the lease (0.3 s) expires, and with one attempt the task fails
        const ended = yield* raw("GET", `/v1/joblib/tasks/${pushed.body.id}`, { token: erin, headers: { prefer: "wait=30" } })
        assert.deepStrictEqual([ended.body.status, ended.body.error?.code], ["failed", "worker_lost"])
        // the worker is forgotten after the worker timeout; its type, with no worker and no task pending, goes
        const gone = yield* until(raw("GET", typePath, { token: erin }), (r) => r.status === 404, "the orphaned type removed")
        assert.strictEqual(gone.body._tag, "JobTypeNotFound")
        const heartbeat = yield* raw("PATCH", "/v1/joblib/workers/dave:w", { token: dave })
        assert.deepStrictEqual([heartbeat.status, heartbeat.body._tag], [404, "WorkerNotFound"])
        const revived = yield* raw("PUT", `/v1/joblib/rooms/${room}/jobs`, { token: dave, json: { name: "public:modifiers:Slow", schema: { type: "array" }, workerId: "dave:w" } })
        assert.deepStrictEqual([revived.status, revived.body.outcome, revived.body.jobType.schema], [201, "revived", { type: "array" }])
      }))
  })
})
