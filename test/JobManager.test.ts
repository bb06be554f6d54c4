import { FetchHttpClient, HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Schema, Stream } from "effect"
import type { JobInfo } from "../src/Domain/Job.js"
import { JobManager } from "../src/client.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { eventsOf } from "./support/workers.js"

/** The base URL of the test server. */
const baseUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

describe("JobManager, the job library's client", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("Effect style: two types in a room and one global, a Map of them; listen() runs tasks another user pushed, with progress, results and a handler's failure", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const room = uniqueQueue("effect-room")
        const alice = yield* token("alice", ["worker"])
        const bob = yield* token("bob")
        const jobs = yield* JobManager.make({ baseUrl: base, token: alice, room, claimWait: "5 seconds" }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        assert.match(jobs.workerId, /^alice:/, "a worker id under the token's sub")
        const globalName = `public:analysis:Count${room.replace(/[^A-Za-z0-9]/g, "")}`
        const scale = yield* jobs.register({
          name: "public:modifiers:Scale",
          schema: Schema.Struct({ factor: Schema.Number }),
          handler: ({ factor }, { progress }) => Effect.as(progress(50, { step: "scaling" }), { scaled: factor * 2 })
        })
        assert.deepStrictEqual([scale.room, scale.jobType.schemaDigest.startsWith("sha256:")], [room, true])
        yield* jobs.register({
          name: "public:modifiers:Explode",
          schema: { type: "object" },
          handler: () => Effect.fail({ code: "too_big", message: "it is too big", retryable: false })
        })
        yield* jobs.register({ name: globalName, room: "@global", schema: { type: "object" }, handler: () => Effect.succeed("counted") })

        // the registry is a Map of the types by name
        assert.strictEqual(jobs.size, 3)
        assert.deepStrictEqual([...jobs.keys()], ["public:modifiers:Scale", "public:modifiers:Explode", globalName])
        assert.isTrue(jobs.has(globalName))
        assert.strictEqual(jobs.get(globalName)?.room, "@global")
        assert.deepStrictEqual([...jobs].map(([name, type]) => [name, type.name]), [...jobs.keys()].map((n) => [n, n]))
        const conflict = yield* Effect.flip(jobs.register({
          name: "public:modifiers:Scale",
          schema: Schema.Struct({ factor: Schema.String }),
          handler: () => Effect.void
        }))
        assert.strictEqual((conflict as { _tag: string })._tag, "SchemaConflict")

        // another user pushes: the Effect Schema was registered as a JSON Schema, so the service checks the payload
        const refused = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/public:modifiers:Scale`, { token: bob, json: { factor: "x" } })
        assert.strictEqual(refused.status, 422)
        const pushed = []
        for (const [name, payload] of [["public:modifiers:Scale", { factor: 21 }], ["public:modifiers:Explode", {}], [globalName, {}]] as const) {
          const answer = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/${name}`, { token: bob, json: payload })
          assert.strictEqual(answer.status, 201, JSON.stringify(answer.body))
          pushed.push(answer.body.id as string)
        }
        const ended = yield* jobs.listen().pipe(
          Stream.take(3),
          Stream.mapEffect((task) => task.run),
          Stream.runCollect,
          Effect.map(Chunk.toArray),
          Effect.timeout("30 seconds")
        )
        const byId = new Map<string, JobInfo>(ended.map((job) => [job.id, job]))
        const [scaled, exploded, counted] = pushed.map((id) => byId.get(id)!)
        assert.deepStrictEqual([scaled!.status, scaled!.result], ["completed", { scaled: 42 }])
        assert.deepStrictEqual([exploded!.status, exploded!.error?.code, exploded!.error?.message], ["failed", "too_big", "it is too big"])
        assert.deepStrictEqual([counted!.status, counted!.result], ["completed", "counted"])
        const progress = (yield* eventsOf(scaled!.id)).filter((event) => event.type === "job.progress")
        assert.deepStrictEqual(progress.map((event) => [event.progress, event.step]), [[50, "scaling"]])

        assert.isTrue(jobs.delete("public:modifiers:Explode"))
        assert.deepStrictEqual([jobs.size, jobs.has("public:modifiers:Explode")], [2, false])
        assert.isTrue(yield* jobs.unregister(globalName))
        const detail = yield* raw("GET", `/v1/joblib/rooms/${room}/jobs/${globalName}`, { token: bob })
        assert.strictEqual(detail.body.workers, 0, "the service no longer counts this client as its worker")
      }))

    it.scoped("plain TypeScript: for await over listen(), Promise handlers; a cancellation aborts the handler and is reported", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const room = uniqueQueue("promise-room")
        const carol = yield* token("carol")
        const dan = yield* token("dan")
        const jobs = JobManager.open({ baseUrl: base, token: carol, room, heartbeatInterval: "0.2 seconds", claimWait: "5 seconds" })
        const outcomes = yield* Effect.promise(async () => {
          let aborted = false
          await jobs.register({ name: "public:render:Quick", schema: { type: "object" }, handler: (payload: { n: number }) => payload.n + 1 })
          await jobs.register({
            name: "public:render:Slow",
            schema: { type: "object" },
            handler: async (_payload, { progress, signal }) => {
              await progress(10, { step: "warming up" })
              // runs until canceled
              await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }))
              aborted = true
            }
          })
          const push = async (name: string, payload: unknown) => {
            const response = await fetch(`${base}/v1/joblib/rooms/${room}/tasks/${name}`, {
              method: "POST",
              headers: { authorization: `Bearer ${dan}`, "content-type": "application/json" },
              body: JSON.stringify(payload)
            })
            return ((await response.json()) as { id: string }).id
          }
          const quick = await push("public:render:Quick", { n: 1 })
          const slow = await push("public:render:Slow", {})
          const ended: Array<JobInfo> = []
          for await (const task of jobs.listen()) {
            if (task.id === quick) ended.push(await task.run())
            if (task.id === slow) {
              const running = task.run()
              // the creator cancels once the task runs (its progress event is the sign)
              const seen = await fetch(`${base}/v1/joblib/tasks/${slow}?afterVersion=2`, {
                headers: { authorization: `Bearer ${dan}`, prefer: "wait=20" }
              })
              assert.strictEqual(seen.status, 200)
              await fetch(`${base}/v1/jobs/${slow}/cancel`, { method: "POST", headers: { authorization: `Bearer ${dan}` } })
              ended.push(await running)
            }
            if (ended.length === 2) break
          }
          return { ended, aborted }
        }).pipe(Effect.timeout("30 seconds"))
        const [quick, slow] = outcomes.ended
        assert.deepStrictEqual([quick!.status, quick!.result], ["completed", 2])
        assert.strictEqual(slow!.status, "canceled")
        assert.isTrue(outcomes.aborted, "the handler's signal was aborted")
        assert.deepStrictEqual([jobs.size, [...jobs.keys()]], [2, ["public:render:Quick", "public:render:Slow"]])
      }))
  })
})

describe("JobManager after a silence", () => {
  // the reaper wakes at least every heartbeat interval of the quickest worker: a registration's is the service's
  layer(serverLayer({ reaper: true, workerTimeout: "1 second", heartbeatInterval: "500 millis" }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("a client the service forgot registers its types again by itself and goes on serving them", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const room = uniqueQueue("silence-room")
        const kim = yield* token("kim")
        const lee = yield* token("lee")
        const jobs = yield* JobManager.make({ baseUrl: base, token: kim, room, claimWait: "5 seconds" }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        yield* jobs.register({ name: "public:tools:Echo", schema: {}, handler: (payload) => Effect.succeed(payload) })
        // silent past the worker timeout: forgotten, and its type, with no task waiting, removed (a heartbeat to
        // check would keep it alive: the type's absence is the sign)
        const typePath = `/v1/joblib/rooms/${room}/jobs/public:tools:Echo`
        for (let i = 0; i < 400 && (yield* raw("GET", typePath, { token: lee })).status !== 404; i++) yield* Effect.sleep("50 millis")
        assert.strictEqual((yield* raw("GET", typePath, { token: lee })).status, 404)
        assert.strictEqual((yield* raw("PATCH", `/v1/joblib/workers/${jobs.workerId}`, { token: kim })).status, 404, "forgotten")
        // listening: the claim answers WorkerNotFound, the client registers again, and serves the type
        const served = yield* jobs.listen().pipe(Stream.take(1), Stream.mapEffect((task) => task.run), Stream.runCollect, Effect.fork)
        let pushed: { status: number; body: any } = { status: 0, body: undefined }
        for (let i = 0; i < 400; i++) {
          pushed = yield* raw("POST", `/v1/joblib/rooms/${room}/tasks/public:tools:Echo`, { token: lee, json: { hello: "again" } })
          if (pushed.status === 201) break
          yield* Effect.sleep("50 millis")
        }
        assert.strictEqual(pushed.status, 201)
        const [done] = Chunk.toArray(yield* Fiber.join(served).pipe(Effect.timeout("30 seconds")))
        assert.deepStrictEqual([done!.id, done!.status, done!.result], [pushed.body.id, "completed", { hello: "again" }])
      }))
  })
})
