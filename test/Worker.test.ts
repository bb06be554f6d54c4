import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { assert, describe, it, layer } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Layer, Ref, Scope, TestClock } from "effect"
import { httpWorkerBackend } from "../src/client.js"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { Forbidden, Unauthorized } from "../src/Domain/Auth.js"
import type { JobId } from "../src/Domain/JobId.js"
import type { ClaimedJob } from "../src/Domain/Worker.js"
import { Jobs } from "../src/Jobs.js"
import { awaitConnected, Listener } from "../src/EventLog/Listener.js"
import * as Worker from "../src/Workers/Worker.js"
import { toNextWakeUp } from "./support/clock.js"
import { closedPort, uniqueQueue } from "./support/fixtures.js"
import { capturingLogs, linesMatching } from "./support/logs.js"
import { serverLayer, token } from "./support/http.js"
import { eventually, testLayer } from "./support/workers.js"
import { suiteConfig, workerBackendSuite } from "./support/workerSuite.js"

/** Waits on the real clock (the test clock does not move by itself). */
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("timed out after 20 s") }),
    Effect.provide(Layer.setClock(Clock.make()))
  )

const waitFor = (id: JobId) => Effect.flatMap(CompletionWatcher, (watcher) => live(watcher.waitFor(id)))

/** Runs a worker in a scope of its own; answers the scope to stop it with. */
const startWorker = <A, E, R>(options: Worker.RunOptions<A, E, R>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const handle = yield* Worker.run(options).pipe(Scope.extend(scope))
    return { handle, scope }
  })

const withoutCancelChannel = ({ onCancelRequested: _, ...rest }: Worker.WorkerBackendShape): Worker.WorkerBackendShape =>
  rest

describe("Worker.run", () => {
  // (before the layer blocks: after them, this file's top-level tests ran on the live clock)
  it.scoped("over HTTP with the service gone, claims back off and log the first failure, then a line per cap", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const port = yield* closedPort
        yield* Worker.run({ workerId: "render:w4", queues: ["q"], handler: () => Effect.void }).pipe(
          Effect.provide(httpWorkerBackend({ baseUrl: `http://127.0.0.1:${port}`, token: "t" })),
          Effect.provide(FetchHttpClient.layer)
        )
        const start = yield* Clock.currentTimeMillis
        // every wake-up on the test clock is the claim loop's next try
        for (let i = 0; i < 30; i++) yield* toNextWakeUp()
        const elapsed = (yield* Clock.currentTimeMillis) - start
        const lines = yield* linesMatching(logs, /claim/)
        assert.isAtMost(lines.length, 1 + Math.floor(elapsed / 10_000), lines.join("\n"))
        assert.match(lines[0]!, /^WARN worker render:w4: claiming failed: .+; retrying with backoff$/)
        assert.isTrue(lines.every((line) => !line.includes("\n")), "no stack traces")
        // 30 tries at up to 10 s apart take minutes
        assert.isAtLeast(elapsed, 120_000)
      })), { timeout: 60_000 })

  // a burst of wake-ups waits up to `debounce` on the clock; the test clock does not move by itself
  layer(testLayer({ debounce: "0 millis" }))((it) => {
    it.effect("a cancel request interrupts the running handler and the job ends canceled", () =>
      Effect.gen(function*() {
        yield* awaitConnected(yield* Listener)
        const jobs = yield* Jobs
        const queue = uniqueQueue("cancel")
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          handler: (_job: ClaimedJob, ctx: Worker.WorkerContext) =>
            ctx.progress(5).pipe(
              Effect.zipRight(Deferred.succeed(started, undefined)),
              Effect.zipRight(Effect.never),
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
            )
        })
        const ref = yield* jobs.enqueue({ name: "long", queue })
        yield* live(Deferred.await(started))
        const requested = yield* jobs.cancel(ref.id)
        assert.isTrue(requested.cancelRequested)
        // no heartbeat is due (the test clock stands still): the cancel channel interrupts the handler
        yield* live(Deferred.await(interrupted))
        const outcome = yield* waitFor(ref.id)
        assert.strictEqual(outcome.status, "canceled")
        // counted once the worker's own call returned (the waiter may hear of the change first)
        yield* eventually(worker.handle.stats, (s) => s.canceled === 1 && s.completed === 0 && s.failed === 0)
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("without a cancel channel, the heartbeat reports the cancel request and the handler is interrupted", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const backend = yield* Worker.WorkerBackend
        const queue = uniqueQueue("hbcancel")
        const started = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          heartbeatInterval: "2 seconds",
          handler: () => Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never))
        }).pipe(Effect.provideService(Worker.WorkerBackend, withoutCancelChannel(backend)))
        const ref = yield* jobs.enqueue({ name: "long", queue })
        yield* live(Deferred.await(started))
        yield* jobs.cancel(ref.id)
        yield* TestClock.adjust("2 seconds")
        const outcome = yield* waitFor(ref.id)
        assert.strictEqual(outcome.status, "canceled")
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("a handler running past the job's timeout is interrupted and the attempt fails with timeout", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("timeout")
        const started = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          handler: () => Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never))
        })
        const ref = yield* jobs.enqueue({ name: "slow", queue, timeout: "3 seconds" })
        yield* live(Deferred.await(started))
        yield* TestClock.adjust("3 seconds")
        const outcome = yield* waitFor(ref.id)
        assert.strictEqual(outcome.status, "failed")
        assert.strictEqual(outcome.error?.code, "timeout")
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("jobs that finish together are completed together: one statement for the lot", () =>
      Effect.gen(function*() {
        yield* awaitConnected(yield* Listener)
        const jobs = yield* Jobs
        const local = yield* Worker.WorkerBackend
        const batches: Array<number> = []
        const counting = Layer.succeed(Worker.WorkerBackend, {
          ...local,
          completeMany: (workerId, items) => {
            batches.push(items.length)
            return local.completeMany!(workerId, items)
          },
          completeAndClaim: (workerId, items, claim) => {
            batches.push(items.length)
            return local.completeAndClaim!(workerId, items, claim)
          }
        })
        const queue = uniqueQueue("group")
        const gate = yield* Deferred.make<void>()
        const started = yield* Ref.make(0)
        const allStarted = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          concurrency: 20,
          handler: (job: ClaimedJob) =>
            Ref.updateAndGet(started, (n) => n + 1).pipe(
              Effect.tap((n) => n === 20 ? Deferred.succeed(allStarted, undefined) : Effect.void),
              Effect.zipRight(Deferred.await(gate)),
              Effect.as({ name: job.name })
            )
        }).pipe(Effect.provide(counting))
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 20 }, (_, i) => ({ name: `g${i}`, queue })))
        yield* live(Deferred.await(allStarted))
        yield* Deferred.succeed(gate, undefined)
        const outcomes = yield* Effect.forEach(refs, (ref) => waitFor(ref.id))
        assert.deepStrictEqual(outcomes.map((o) => o.status), refs.map(() => "completed"))
        assert.deepStrictEqual(outcomes.map((o) => o.result), refs.map((_, i) => ({ name: `g${i}` })))
        assert.strictEqual(batches.reduce((a, b) => a + b, 0), 20)
        // the first job to finish may be written alone; the others wait for that write and go together
        assert.isAtMost(batches.length, 3, `batches: ${batches.join(", ")}`)
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("shutdown stops claiming, lets handlers finish within the grace period, then releases the rest", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("shutdown")
        const started = yield* Ref.make(0)
        const finishQuick = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          concurrency: 2,
          shutdownGrace: "5 seconds",
          handler: (job: ClaimedJob) =>
            Ref.update(started, (n) => n + 1).pipe(
              Effect.zipRight(job.name === "quick" ? Deferred.await(finishQuick) : Effect.never),
              Effect.as(job.name)
            )
        })
        const quick = yield* jobs.enqueue({ name: "quick", queue, priority: 2 })
        const stuck = yield* jobs.enqueue({ name: "stuck", queue, priority: 1 })
        yield* eventually(Ref.get(started), (n) => n === 2)
        const closing = yield* Effect.fork(Scope.close(worker.scope, Exit.void))
        // the quick one finishes within the grace period; the stuck one does not
        yield* Deferred.succeed(finishQuick, undefined)
        assert.strictEqual((yield* waitFor(quick.id)).status, "completed")
        // nothing new is claimed while shutting down
        const late = yield* jobs.enqueue({ name: "late", queue })
        // the grace period passes (in steps: the shutdown may not be waiting yet)
        for (let i = 0; i < 10 && closing.unsafePoll() === null; i++) {
          yield* TestClock.adjust("1 second")
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        }
        yield* live(closing.await)
        const released = yield* jobs.get(stuck.id)
        assert.strictEqual(released.status, "pending")
        assert.strictEqual(released.attempt, 0)
        assert.isNull(released.workerId)
        assert.strictEqual((yield* jobs.get(late.id)).status, "pending")
        assert.strictEqual(yield* Ref.get(started), 2)
      }))

    it.effect("a shutdown that comes while a claim is answering still releases the jobs that claim took", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const local = yield* Worker.WorkerBackend
        const queue = uniqueQueue("claim-window")
        const job = yield* jobs.enqueue({ name: "caught", queue })
        const inClaim = yield* Deferred.make<void>()
        const answer = yield* Deferred.make<void>()
        // a backend whose claim, once it has the job, waits for the test (uninterruptibly, as an answer in flight)
        const backend = Layer.succeed(Worker.WorkerBackend, {
          ...local,
          claim: (workerId, options) =>
            Effect.uninterruptible(Effect.tap(local.claim(workerId, options), (claimed) =>
              claimed.length === 0 ? Effect.void : Deferred.succeed(inClaim, undefined).pipe(Effect.zipRight(Deferred.await(answer)))))
        })
        const scope = yield* Scope.make()
        yield* Worker.run({ queues: [queue], handler: () => Effect.never }).pipe(Scope.extend(scope), Effect.provide(backend))
        yield* live(Deferred.await(inClaim))
        // the shutdown interrupts the claim loop while the claim answers: the job must not be left held
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* Deferred.succeed(answer, undefined)
        yield* live(closing.await)
        const released = yield* jobs.get(job.id)
        assert.strictEqual(released.status, "pending")
        assert.strictEqual(released.attempt, 0)
        assert.isNull(released.workerId)
      }))
  })

  /** The base URL of the test server. */
  const baseUrl = Effect.map(
    HttpServer.HttpServer,
    (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
  )

  /**
   * A fetch client that sends `bearer()` as each request's token (for a backend given no token of its own), and
   * counts the requests sent with a token `counted` says to count.
   */
  const switchingClient = (bearer: () => string, counted: (token: string, url: string) => boolean) => {
    let count = 0
    const layer = Layer.effect(
      HttpClient.HttpClient,
      Effect.map(HttpClient.HttpClient, (client) =>
        HttpClient.mapRequest(client, (request) => {
          const token = bearer()
          if (counted(token, request.url)) count++
          return HttpClientRequest.bearerToken(request, token)
        }))
    ).pipe(Layer.provide(FetchHttpClient.layer))
    return { layer, count: () => count }
  }

  layer(serverLayer({ heartbeatInterval: "2 seconds" }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("over HTTP, refused credentials fail Worker.run with the typed error at once, without retrying", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const queue = uniqueQueue("refused")
        const cases = [
          { bearer: "not-a-token", expected: "Unauthorized" },
          { bearer: yield* token("render", ["worker"], -60), expected: "Unauthorized" },
          // a user's token: authenticated, but not a worker
          { bearer: yield* token("render", []), expected: "Forbidden" }
        ] as const
        for (const { bearer, expected } of cases) {
          const client = switchingClient(() => bearer, () => true)
          const error = yield* Worker.run({ workerId: "render:w1", queues: [queue], handler: () => Effect.void }).pipe(
            Effect.provide(httpWorkerBackend({ baseUrl: base })),
            Effect.provide(client.layer),
            Effect.flip,
            Effect.timeout("10 seconds")
          )
          const typed = expected === "Unauthorized" ? error instanceof Unauthorized : error instanceof Forbidden
          assert.isTrue(typed, String(error))
          assert.strictEqual(client.count(), 1, "one request, no retry")
        }
      }))

    it.scoped("over HTTP, a worker whose token stops being accepted stops: await fails, no more claims", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const jobs = yield* Jobs
        const queue = uniqueQueue("revoked")
        const valid = yield* token("render", ["worker"])
        const expired = yield* token("render", ["worker"], -60)
        let bearer = valid
        const client = switchingClient(() => bearer, (t) => t === expired)
        const done = yield* Deferred.make<void>()
        const handle = yield* Worker.run({
          workerId: "render:w2",
          queues: [queue],
          claimWait: "1 second",
          handler: () => Deferred.succeed(done, undefined)
        }).pipe(Effect.provide(httpWorkerBackend({ baseUrl: base })), Effect.provide(client.layer))
        // it works with the valid token
        yield* jobs.enqueue({ name: "first", queue })
        yield* Deferred.await(done).pipe(Effect.timeout("15 seconds"))
        bearer = expired
        const error = yield* handle.await.pipe(Effect.flip, Effect.timeout("15 seconds"))
        assert.instanceOf(error, Unauthorized)
        // stopped: its first refused request was its last
        assert.strictEqual(client.count(), 1)
        assert.deepStrictEqual(yield* handle.running, [])
      }))
  })
})

// the behaviour both backends share, one suite run against each
describe("Worker.run, every backend", () => {
  workerBackendSuite("in-process (Worker.local)", Layer.provideMerge(Worker.local, testLayer(suiteConfig)))

  /** `Client.httpWorkerBackend` with a worker token, on the test server of the layer it is given. */
  const httpBackend = Layer.unwrapEffect(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const baseUrl = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
    return httpWorkerBackend({ baseUrl, token: yield* token("render", ["worker"]) })
  })).pipe(Layer.provide(FetchHttpClient.layer))
  workerBackendSuite("over HTTP (Client.httpWorkerBackend)", Layer.provideMerge(httpBackend, serverLayer(suiteConfig)))
})
