import { FetchHttpClient, HttpServer } from "@effect/platform"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Either, Exit, Fiber, Option, Scope, Stream, TestClock } from "effect"
import * as Client from "../src/client.js"
import { User } from "../src/Domain/Auth.js"
import * as Limits from "../src/Http/Limits.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { openSse } from "./support/service.js"

const alice = new User({ sub: "alice", roles: [] })
const bob = new User({ sub: "bob", roles: [] })
const admin = new User({ sub: "root", roles: ["admin"] })
const worker = new User({ sub: "box", roles: ["worker"] })

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}`
})

const rpcAs = (bearer: string) =>
  Effect.flatMap(baseUrl, (base) => Client.rpcClient({ baseUrl: base, token: bearer }).pipe(Effect.provide(FetchHttpClient.layer)))

describe("Limits", () => {
  it.effect("a token bucket per user: a burst, then 429 with the seconds until the next request; refilled at the rate", () =>
    Effect.gen(function*() {
      const limits = Limits.make({ rate: Option.some(2), burst: 3, maxStreams: Option.none() })
      for (let i = 0; i < 3; i++) yield* limits.admit(alice)
      const over = yield* Effect.flip(limits.admit(alice))
      assert.deepInclude(over, { _tag: "TooManyRequests", limit: "rate", retryAfter: 1 })
      // another user has a bucket of their own; admins and workers are not limited
      yield* limits.admit(bob)
      for (let i = 0; i < 50; i++) yield* Effect.zipRight(limits.admit(admin), limits.admit(worker))
      yield* TestClock.adjust("500 millis")
      yield* limits.admit(alice)
      assert.isTrue(Either.isLeft(yield* Effect.either(limits.admit(alice))))
      yield* TestClock.adjust("10 seconds")
      // refilled up to the burst, no further
      for (let i = 0; i < 3; i++) yield* limits.admit(alice)
      assert.isTrue(Either.isLeft(yield* Effect.either(limits.admit(alice))))
    }))

  it.effect("open streams per user: held until their scope closes; admins and workers are not limited", () =>
    Effect.gen(function*() {
      const limits = Limits.make({ rate: Option.none(), burst: 1, maxStreams: Option.some(2) })
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      yield* Scope.extend(limits.hold(alice), first)
      yield* Scope.extend(limits.hold(alice), second)
      assert.strictEqual(yield* limits.streams("alice"), 2)
      const over = yield* Effect.flip(Effect.scoped(limits.hold(alice)))
      assert.deepInclude(over, { _tag: "TooManyRequests", limit: "streams" })
      yield* Effect.scoped(limits.hold(bob))
      yield* Effect.scoped(Effect.all(Array.from({ length: 10 }, () => Effect.zipRight(limits.hold(admin), limits.hold(worker)))))
      yield* Scope.close(first, Exit.void)
      assert.strictEqual(yield* limits.streams("alice"), 1)
      yield* Effect.scoped(limits.hold(alice))
      yield* Scope.close(second, Exit.void)
      assert.strictEqual(yield* limits.streams("alice"), 0)
    }))

  // a rate that does not refill during the test, whatever the machine's speed
  layer(serverLayer({ rateLimit: 0.01, rateLimitBurst: 5, maxStreamsPerUser: null }), { excludeTestServices: true, timeout: 60_000 })(
    (it) => {
      it.effect("HTTP and RPC share a user's bucket: over it, 429 TooManyRequests with Retry-After; others are not held back", () =>
        Effect.gen(function*() {
          const carol = yield* token("carol")
          for (let i = 0; i < 3; i++) assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: carol })).status, 200)
          const rpc = yield* rpcAs(carol)
          yield* rpc.JobList({})
          yield* rpc.JobList({})
          const over = yield* raw("GET", "/v1/jobs", { token: carol })
          assert.strictEqual(over.status, 429)
          assert.deepInclude(over.body, { _tag: "TooManyRequests", limit: "rate" })
          assert.isAbove(Number(over.headers["retry-after"]), 0)
          const overRpc = yield* Effect.flip(rpc.JobList({}))
          assert.strictEqual(overRpc._tag, "TooManyRequests")
          // another user, a worker and an admin go on
          assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: yield* token("dan") })).status, 200)
          const box = yield* token("box", ["worker"])
          const root = yield* token("root", ["admin"])
          for (let i = 0; i < 10; i++) {
            assert.strictEqual((yield* raw("POST", "/v1/workers/box:1/claim", { token: box, json: { queues: [uniqueQueue()] } })).status, 200)
            assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: root })).status, 200)
          }
          // unauthenticated requests are 401, never counted against anyone
          assert.strictEqual((yield* raw("GET", "/v1/jobs")).status, 401)
        }).pipe(Effect.scoped))
    }
  )

  layer(serverLayer({ rateLimit: null, maxStreamsPerUser: 2 }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("open SSE streams and long-polls per user: over the limit 429; a stream that ends gives its slot back", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const erin = yield* token("erin")
        const job = yield* raw("POST", "/v1/jobs", { token: erin, json: { name: "held", queue: uniqueQueue() } })
        const id = job.body.id as string
        const auth = { authorization: `Bearer ${erin}` }
        const first = yield* openSse(`${base}/v1/events`, auth)
        assert.strictEqual(yield* Deferred.await(first.opened), 200)
        const closeSecond = yield* Scope.make()
        const second = yield* Scope.extend(openSse(`${base}/v1/jobs/${id}/events`, auth), closeSecond)
        assert.strictEqual(yield* Deferred.await(second.opened), 200)
        const third = yield* raw("GET", "/v1/events", { token: erin })
        assert.strictEqual(third.status, 429)
        assert.deepInclude(third.body, { _tag: "TooManyRequests", limit: "streams" })
        assert.strictEqual(third.headers["retry-after"], "1")
        const poll = yield* raw("GET", `/v1/jobs/${id}`, { token: erin, headers: { prefer: "wait=5" } })
        assert.strictEqual(poll.status, 429)
        const many = yield* raw("POST", "/v1/jobs/wait", { token: erin, json: { ids: [id], timeoutSeconds: 5 } })
        assert.strictEqual(many.status, 429)
        // what does not wait is not limited; another user is not held back
        assert.strictEqual((yield* raw("GET", `/v1/jobs/${id}`, { token: erin })).status, 200)
        const frank = yield* token("frank")
        const other = yield* openSse(`${base}/v1/events`, { authorization: `Bearer ${frank}` })
        assert.strictEqual(yield* Deferred.await(other.opened), 200)
        // the second stream ends (its client goes): its slot comes back once the server sees it
        yield* Scope.close(closeSecond, Exit.void)
        const again = yield* Effect.repeat(raw("GET", `/v1/jobs/${id}`, { token: erin, headers: { prefer: "wait=1" } }), {
          until: (answer) => answer.status === 200,
          times: 200
        })
        assert.strictEqual(again.status, 200)
      }))

    it.scoped("RPC streams and waits take the same slots", () =>
      Effect.gen(function*() {
        const gina = yield* token("gina")
        const rpc = yield* rpcAs(gina)
        const ref = yield* rpc.JobEnqueue({ name: "held", queue: uniqueQueue() })
        const started = yield* Deferred.make<void>()
        const watching = yield* Effect.fork(
          rpc.JobWatch({ id: ref.id }).pipe(Stream.tap(() => Deferred.succeed(started, undefined)), Stream.runDrain)
        )
        yield* Deferred.await(started)
        const sse = yield* openSse(`${yield* baseUrl}/v1/events`, { authorization: `Bearer ${gina}` })
        assert.strictEqual(yield* Deferred.await(sse.opened), 200)
        const over = yield* Effect.flip(rpc.JobGet({ id: ref.id, wait: Duration.seconds(5) }))
        assert.strictEqual(over._tag, "TooManyRequests")
        const overWatch = yield* Effect.flip(Stream.runDrain(rpc.EventsWatch({})))
        assert.strictEqual(overWatch._tag, "TooManyRequests")
        yield* Fiber.interrupt(watching)
        const info = yield* Effect.retry(rpc.JobGet({ id: ref.id, wait: Duration.millis(10) }), { times: 200 })
        assert.strictEqual(info.id, ref.id)
      }))
  })
})
