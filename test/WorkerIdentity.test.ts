import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Layer, Option } from "effect"
import { JobId } from "../src/Domain/JobId.js"
import * as Client from "../src/client.js"
import { User } from "../src/Domain/Auth.js"
import { Rpcs } from "../src/Rpcs.js"
import * as Worker from "../src/Workers/Worker.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

/** An `RpcClient` of the group over real HTTP to the test server, sending `bearer`. */
const rpcAs = (bearer: string) =>
  Effect.gen(function*() {
    const protocol = RpcClient.layerProtocolHttp({
      url: `${yield* baseUrl}/rpc`,
      transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(bearer))
    }).pipe(Layer.provide([RpcSerialization.layerNdjson, FetchHttpClient.layer]))
    return yield* RpcClient.make(Rpcs).pipe(Effect.provide(protocol))
  })

/** A job of a fresh queue, claimed (and started) by worker `w1` with its own token. */
const heldByW1 = Effect.gen(function*() {
  const queue = uniqueQueue("ident")
  const w1 = yield* token("w1", ["worker"])
  const ref = yield* raw("POST", "/v1/jobs", { token: yield* token("owner"), json: { name: "held", queue } })
  const claim = yield* raw("POST", "/v1/workers/w1/claim", { token: w1, json: { queues: [queue], start: true } })
  assert.deepStrictEqual(claim.body.jobs.map((j: { id: string }) => j.id), [ref.body.id])
  return { id: ref.body.id as string, queue, w1 }
})

const statusOf = (id: string) =>
  Effect.flatMap(token("root", ["admin"]), (admin) => Effect.map(raw("GET", `/v1/jobs/${id}`, { token: admin }), (r) => r.body))

describe("worker identity", () => {
  it("a worker may act as its sub or sub:<name>; an admin as any; a user as none", () => {
    const w2 = new User({ sub: "w2", roles: ["worker"] })
    assert.isTrue(w2.mayActAs("w2"))
    assert.isTrue(w2.mayActAs("w2:a"))
    assert.isTrue(w2.mayActAs("w2:box-1:3"))
    for (const other of ["w1", "w2x", "w", "", "w2-a", "x:w2", " w2"]) assert.isFalse(w2.mayActAs(other), other)
    assert.isTrue(new User({ sub: "root", roles: ["admin"] }).mayActAs("w1"))
    assert.isFalse(new User({ sub: "w2", roles: [] }).mayActAs("w2"))
  })

  it("the default worker id of Worker.run is <namespace>:<host>-<pid>-<random>, at most 200 characters", () => {
    assert.match(Worker.defaultWorkerId(), new RegExp(`^[^:]+-${process.pid}-[a-z0-9]+$`))
    assert.isTrue(Worker.defaultWorkerId("box-1").startsWith("box-1:"))
    assert.isAtMost(Worker.defaultWorkerId("x".repeat(150)).length, 200)
    assert.deepStrictEqual(Client.subOf("not-a-jwt"), Option.none())
  })

  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("HTTP: with w2's token, acting as w1 (complete, fail, progress, heartbeat, release, claim) is 403; the job stays w1's", () =>
      Effect.gen(function*() {
        const { id, queue, w1 } = yield* heldByW1
        const w2 = yield* token("w2", ["worker"])
        const refusals = [
          yield* raw("PATCH", `/v1/jobs/${id}`, { token: w2, json: { workerId: "w1", status: "completed", result: { stolen: 1 } } }),
          yield* raw("PATCH", `/v1/jobs/${id}`, { token: w2, json: { workerId: "w1", status: "failed", error: { message: "x" } } }),
          yield* raw("PATCH", `/v1/jobs/${id}`, { token: w2, json: { workerId: "w1", status: "canceled" } }),
          yield* raw("POST", `/v1/jobs/${id}/progress`, { token: w2, json: { workerId: "w1", percent: 90, force: true } }),
          yield* raw("PATCH", "/v1/workers/w1", { token: w2 }),
          yield* raw("POST", "/v1/workers/w1/release", { token: w2, json: { ids: [id] } }),
          yield* raw("POST", "/v1/workers/w1/claim", { token: w2, json: { queues: [queue] } }),
          // refused before the body is read, whatever it holds
          yield* raw("POST", "/v1/workers/w1/claim", { token: w2, json: { queues: 7 } }),
          yield* raw("POST", "/v1/workers/w2x/claim", { token: w2, json: { queues: [queue] } })
        ]
        for (const r of refusals) {
          assert.strictEqual(r.status, 403, JSON.stringify(r.body))
          assert.deepInclude(r.body, { _tag: "Forbidden", required: "admin", workerIds: ["w2", "w2:*"] })
        }
        assert.deepInclude(yield* statusOf(id), { status: "running", workerId: "w1", result: null })
        assert.strictEqual((yield* statusOf(id)).progress.percent, 0)

        // its own namespace: w2 and w2:<name> are w2's; acting on w1's job as one of them is NotJobHolder, unnamed
        assert.strictEqual((yield* raw("POST", "/v1/workers/w2:a/claim", { token: w2, json: { queues: [queue] } })).status, 200)
        const notHeld = yield* raw("PATCH", `/v1/jobs/${id}`, { token: w2, json: { workerId: "w2:a", status: "completed" } })
        assert.strictEqual(notHeld.status, 409)
        assert.strictEqual(notHeld.body._tag, "NotJobHolder")
        assert.notProperty(notHeld.body, "holder")
        assert.notInclude(JSON.stringify(notHeld.body), "w1")

        // an admin may act as any worker; w1 ends its own job
        const admin = yield* token("root", ["admin"])
        assert.strictEqual((yield* raw("PATCH", "/v1/workers/w1", { token: admin })).status, 200)
        const done = yield* raw("PATCH", `/v1/jobs/${id}`, { token: w1, json: { workerId: "w1", status: "completed", result: 1 } })
        assert.strictEqual(done.status, 200)
      }))

    it.scoped("RPC: with w2's token, WorkerClaim, WorkerRelease, WorkerHeartbeat, JobUpdate and JobProgress as w1 are Forbidden", () =>
      Effect.gen(function*() {
        const { id, queue } = yield* heldByW1
        const w2 = yield* rpcAs(yield* token("w2", ["worker"]))
        const attempts = [
          w2.JobUpdate({ id: JobId.make(id), workerId: "w1", status: "completed", result: { stolen: 1 } }),
          w2.JobProgress({ id: JobId.make(id), workerId: "w1", percent: 90, force: true }),
          w2.WorkerHeartbeat({ workerId: "w1" }),
          w2.WorkerRelease({ workerId: "w1", ids: [JobId.make(id)] }),
          w2.WorkerClaim({ workerId: "w1", queues: [queue] })
        ] as const
        for (const attempt of attempts) {
          const error: object = yield* Effect.flip(attempt as Effect.Effect<unknown, object>)
          assert.deepInclude({ ...error }, { _tag: "Forbidden", required: "admin", workerIds: ["w2", "w2:*"] })
        }
        assert.deepInclude(yield* statusOf(id), { status: "running", workerId: "w1", result: null })
        assert.deepStrictEqual(yield* w2.WorkerClaim({ workerId: "w2:rpc", queues: [queue] }), [])
      }))

    it.scoped("Worker.run over HTTP with a worker token whose sub is worker runs jobs as worker:<host>-<pid>-<random>", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const queue = uniqueQueue("ident-run")
        const ran = yield* Deferred.make<string>()
        const handle = yield* Worker.run({
          queues: [queue],
          claimWait: "2 seconds",
          handler: (_job, ctx) => Effect.as(Deferred.succeed(ran, ctx.workerId), { ok: true })
        }).pipe(
          Effect.provide(Client.httpWorkerBackend({ baseUrl: base, token: yield* token("worker", ["worker"]) })),
          Effect.provide(FetchHttpClient.layer)
        )
        assert.match(handle.workerId, /^worker:/)
        const ref = yield* raw("POST", "/v1/jobs", { token: yield* token("owner"), json: { name: "run", queue } })
        assert.strictEqual(yield* Deferred.await(ran).pipe(Effect.timeout("20 seconds")), handle.workerId)
        const done = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: yield* token("owner"), headers: { prefer: "wait=20" } })
        assert.deepInclude(done.body, { status: "completed", result: { ok: true } })
      }))
  })
})
