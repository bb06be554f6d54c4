import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { assert, describe, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Ref, Stream } from "effect"
import { Rpcs } from "../src/Rpcs.js"
import { uniqueQueue } from "./support/fixtures.js"
import { serverLayer, token } from "./support/http.js"

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
        const polling = yield* Effect.fork(alice.JobGet({ id: ref.id, wait: 30 }))
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
        const invalid = yield* Effect.flip(alice.JobEnqueue({ name: "" }))
        assert.deepInclude({ ...invalid }, { _tag: "InvalidInput", field: "name" })
        assert.strictEqual((yield* Effect.flip(alice.JobGet({ id: "nope" })))._tag, "InvalidInput")
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
        assert.strictEqual((yield* Effect.flip(worker.WorkerRelease({ workerId: "w:w3", ids: ["nope"] })))._tag, "InvalidInput")
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
        const mine = yield* Effect.fork(
          carol.EventsWatch({ queue }).pipe(Stream.take(4), Stream.runCollect)
        )
        yield* Effect.sleep("300 millis")
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
        const streamed = Chunk.toReadonlyArray(yield* Fiber.join(mine).pipe(Effect.timeout("20 seconds")))
        assert.deepStrictEqual(streamed.map((s) => s.event.version), [2, 3, 4, 5])
        for (const s of streamed) assert.match(s.cursor, /^\d+\./)
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
        assert.strictEqual((yield* Effect.flip(dana.WebhookCreate({ url: "https://93.184.215.14/x", eventTypes: [] })))._tag, "InvalidInput")
        yield* dana.WebhookDelete({ id: created.id })
        assert.deepStrictEqual((yield* dana.WebhookList()).webhooks, [])
      }))
  })
})
