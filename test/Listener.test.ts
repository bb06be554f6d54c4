import { HttpClient, HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Stream, TestClock } from "effect"
import * as Net from "node:net"
import pg from "pg"
import { JobWatchConfig } from "../src/Config.js"
import { Authentication, StreamAuthentication } from "../src/Api.js"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { Unauthorized } from "../src/Domain/Auth.js"
import { RoutesLive, routerConfig } from "../src/Http.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { StreamTail } from "../src/Streams/Tail.js"
import { Jobs } from "../src/Jobs.js"
import { Webhooks } from "../src/Webhooks.js"
import { RpcAuthentication } from "../src/Rpcs.js"
import { allRepos } from "./support/repos.js"
import * as Listener from "../src/EventLog/Listener.js"
import { LocalEvents } from "../src/EventLog/LocalEvents.js"
import { Notifications } from "../src/Notifications.js"
import { ProgressReporter } from "../src/Workers/ProgressReporter.js"
import { Workers } from "../src/Workers.js"
import { ClaimWaiters } from "../src/Workers/ClaimWaiters.js"
import { JobLib } from "../src/JobLib.js"
import { capturingLogs, linesMatching } from "./support/logs.js"
import * as Proxy from "./support/proxy.js"
import * as TestDb from "./support/TestDb.js"
import { Metrics } from "../src/Metrics.js"

/** A loopback port nobody listens on: connections to it are refused at once. */
const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const server = Net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as Net.AddressInfo
        server.close(() => resolve(port))
      })
    })
)

/** Waits in real time (bounded) until the listener's loop sleeps on the test clock, then answers the wake time. */
const nextSleep = Effect.gen(function*() {
  for (let i = 0; i < 1000; i++) {
    const sleeps = yield* TestClock.sleeps()
    if (Chunk.isNonEmpty(sleeps)) return Chunk.headNonEmpty(sleeps)
    yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
  }
  return yield* Effect.die("the listener never went to sleep")
})

/** Waits in real time (bounded) for `fiber` to finish. */
const pollFiber = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) return exit.value
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Effect.die("the fiber did not finish")
  })

describe("Listener", () => {
  it.scoped("backs off exponentially with jitter, capped, and gives up after shutdownOnListenerFailure", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const listener = yield* Listener.make({ host: "127.0.0.1", port, user: "x", connectionTimeoutMillis: 5000 }).pipe(
        Effect.provide(JobWatchConfig.layer({ listenerMaxBackoff: "2 seconds", shutdownOnListenerFailure: "30 seconds" }))
      )
      const fatal = yield* Effect.fork(listener.awaitFailure)
      const delays: Array<number> = []
      for (let i = 0; i < 100; i++) {
        const wake = yield* nextSleep
        delays.push(wake - (yield* Clock.currentTimeMillis))
        const state = yield* listener.currentState
        assert.isFalse(state.connected)
        assert.strictEqual(state.failures, i + 1)
        assert.isTrue(Option.isSome(state.lastError))
        yield* TestClock.setTime(wake)
        if ((yield* Clock.currentTimeMillis) >= 30_000) break
      }
      // 100, 200, 400, … ms capped at 2 s, each with "equal jitter" (between half and all of it)
      delays.forEach((delay, n) => {
        const ceiling = Math.min(2000, 100 * 2 ** n)
        assert.isAtLeast(delay, ceiling / 2, `attempt ${n + 1}`)
        assert.isAtMost(delay, ceiling, `attempt ${n + 1}`)
      })
      // about 30 s / (1..2 s) attempts after the first few: it keeps trying, without spinning
      assert.isAtLeast(delays.length, 15)
      assert.isAtMost(delays.length, 40)
      const failure = yield* pollFiber(fatal)
      assert.isTrue(Exit.isFailure(failure))
      if (Exit.isFailure(failure)) assert.match(String(failure.cause), /ListenerFailed|down for/)
    }), { timeout: 60_000 })

  it.scoped("without shutdownOnListenerFailure it never gives up", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const listener = yield* Listener.make({ host: "127.0.0.1", port, user: "x" }).pipe(
        Effect.provide(JobWatchConfig.layer({ listenerMaxBackoff: "1 second" }))
      )
      const fatal = yield* Effect.fork(listener.awaitFailure)
      for (let i = 0; i < 40; i++) yield* TestClock.setTime(yield* nextSleep)
      assert.isTrue(Option.isNone(yield* Fiber.poll(fatal)))
      assert.isAtLeast((yield* listener.currentState).failures, 40)
    }), { timeout: 60_000 })

  it.scoped("a listener that cannot connect logs the first failure, then a line per cap with a count, no traces", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const listener = yield* Listener.make({ host: "127.0.0.1", port, user: "x" }).pipe(
          Effect.provide(JobWatchConfig.layer({ listenerMaxBackoff: "4 seconds" }))
        )
        const start = yield* Clock.currentTimeMillis
        for (let i = 0; i < 60; i++) yield* TestClock.setTime(yield* nextSleep)
        const elapsed = (yield* Clock.currentTimeMillis) - start
        const lines = yield* linesMatching(logs, /LISTEN/)
        assert.isAtLeast((yield* listener.currentState).failures, 60)
        // 60 failures over a few minutes: the first, then at most one line per 4 s
        assert.isAtMost(lines.length, 1 + Math.floor(elapsed / 4000), lines.join("\n"))
        assert.isBelow(lines.length, 50)
        assert.match(lines[0]!, /^WARN the LISTEN connection failed: cannot LISTEN: .*ECONNREFUSED.*; retrying/)
        assert.match(lines[1]!, /^WARN the LISTEN connection still failing: \d+ failures in/)
        assert.isTrue(lines.every((line) => !line.includes("\n")), "no stack traces")
      })), { timeout: 60_000 })

  /** The services the routes need, on the given listener (nobody is authenticated: only /ready is asked). */
  const servicesOn = <E, R>(listener: Layer.Layer<Listener.Listener, E, R>) => {
    const notifications = Notifications.DefaultWithoutDependencies.pipe(
      Layer.provide([allRepos, LocalEvents.Default, listener])
    )
    const waiters = ClaimWaiters.DefaultWithoutDependencies.pipe(Layer.provide(listener))
    const workers = Workers.DefaultWithoutDependencies.pipe(
      Layer.provide([allRepos, ProgressReporter.Default, waiters, listener])
    )
    return Layer.mergeAll(
      Jobs.Default,
      CompletionWatcher.DefaultWithoutDependencies.pipe(Layer.provide([notifications, allRepos])),
      workers,
      JobLib.DefaultWithoutDependencies.pipe(Layer.provide([allRepos, workers, waiters])),
      EventStream.DefaultWithoutDependencies.pipe(
        Layer.provide([
          allRepos,
          StreamTail.DefaultWithoutDependencies.pipe(Layer.provide([allRepos, listener])),
          CompletionWatcher.DefaultWithoutDependencies.pipe(Layer.provide([notifications, allRepos]))
        ])
      ),
      Webhooks.Default,
      Metrics.Default,
      Layer.succeed(Authentication, { bearer: () => Effect.fail(new Unauthorized({ message: "no one" })) }),
      Layer.succeed(StreamAuthentication, {
        bearer: () => Effect.fail(new Unauthorized({ message: "no one" })),
        accessToken: () => Effect.fail(new Unauthorized({ message: "no one" }))
      }),
      Layer.succeed(RpcAuthentication, RpcAuthentication.of(() => Effect.fail(new Unauthorized({ message: "no one" })))),
      listener
    )
  }

  it.live("/ready answers 503 naming the listener while it is down, 200 with a live one", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const down = Layer.scoped(
        Listener.Listener,
        Effect.map(Listener.make({ host: "127.0.0.1", port, user: "x" }), (impl) => Listener.Listener.make(impl))
      )
      /** Asks /ready until it answers `expected` (bounded), on a server with the given listener. */
      const readyUntil = <E, R>(listener: Layer.Layer<Listener.Listener, E, R>, expected: number) =>
        Effect.gen(function*() {
          let last = { status: 0, body: {} as unknown }
          for (let i = 0; i < 100; i++) {
            const response = yield* HttpClient.get("/ready")
            last = { status: response.status, body: yield* response.json }
            if (last.status === expected) return last
            yield* Effect.sleep(Duration.millis(50))
          }
          return last
        }).pipe(
          Effect.scoped,
          Effect.provide(
            HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }).pipe(
              Layer.provide(servicesOn(listener)),
              Layer.provideMerge(NodeHttpServer.layerTest),
              Layer.provide(TestDb.layer())
            )
          )
        )
      const whenDown = yield* readyUntil(down, 503)
      assert.strictEqual(whenDown.status, 503)
      assert.deepInclude(whenDown.body as object, { _tag: "NotReady", database: "up" })
      assert.match((whenDown.body as { message: string }).message, /LISTEN/)
      assert.isFalse((whenDown.body as { listener: { connected: boolean } }).listener.connected)
      const whenUp = yield* readyUntil(Listener.Listener.Default, 200)
      assert.strictEqual(whenUp.status, 200)
      assert.isTrue((whenUp.body as { listener: { connected: boolean } }).listener.connected)
    }), { timeout: 60_000 })

  /** Waits (up to `seconds`, real time) until the listener's state satisfies `holds`. */
  const stateUntil = (
    listener: Effect.Effect.Success<ReturnType<typeof Listener.make>>,
    holds: (state: Listener.ListenerState) => boolean,
    seconds = 15
  ) =>
    listener.state.changes.pipe(
      Stream.filter(holds),
      Stream.runHead,
      Effect.flatten,
      Effect.timeoutFail({
        duration: Duration.seconds(seconds),
        onTimeout: () => new Error(`no such state in ${seconds} s`)
      })
    )

  it.scopedLive("a frozen LISTEN connection fails its check: it reconnects, reconciles and hears doorbells again", () =>
    Effect.gen(function*() {
      const proxy = yield* Proxy.make
      const schema = TestDb.freshSchema()
      const listener = yield* Listener.make({ connectionString: proxy.url }).pipe(
        Effect.provide(
          JobWatchConfig.layer({ schema, listenerCheckInterval: "300 millis", listenerMaxBackoff: "200 millis" })
        )
      )
      yield* stateUntil(listener, (s) => s.connected)
      const pidBefore = yield* listener.backendPid
      const reconciled = yield* Deferred.make<void>()
      yield* listener.on("reconcile", () => Deferred.unsafeDone(reconciled, Effect.void))
      const rang = yield* Deferred.make<string>()
      yield* listener.on("doorbell", (payload) => Deferred.unsafeDone(rang, Effect.succeed(payload)))

      // its backend stops answering (as under SIGSTOP): no error, no end, the socket stays open
      proxy.freeze()
      yield* Deferred.await(reconciled).pipe(
        Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("never reconnected") })
      )
      const state = yield* listener.currentState
      assert.isTrue(state.connected)
      assert.strictEqual(state.reconnects, 1)
      assert.match(Option.getOrElse(state.lastError, () => ""), /did not answer a check/)
      assert.notDeepEqual(yield* listener.backendPid, pidBefore)
      // the new connection is live: a doorbell reaches the handler
      yield* Effect.acquireUseRelease(
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: TestDb.databaseUrl() })
          await client.connect()
          return client
        }),
        (client) => Effect.promise(() => client.query("SELECT pg_notify($1, 'ring')", [listener.channel])),
        (client) => Effect.promise(() => client.end())
      )
      assert.strictEqual(yield* Deferred.await(rang).pipe(Effect.timeout("10 seconds")), "ring")
    }), { timeout: 60_000 })

  it.scopedLive("/ready answers 503 while the LISTEN connection's host is frozen, 200 once it answers again", () =>
    Effect.gen(function*() {
      const proxy = yield* Proxy.make
      const throughProxy = Layer.scoped(
        Listener.Listener,
        Effect.map(Listener.make({ connectionString: proxy.url }), Listener.Listener.make)
      )
      const ready = Effect.gen(function*() {
        const response = yield* HttpClient.get("/ready")
        return response.status
      })
      /** Asks /ready until it answers `expected` (bounded). */
      const readyUntil = (expected: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 300; i++) {
            const status = yield* ready
            if (status === expected) return status
            yield* Effect.sleep(Duration.millis(50))
          }
          return yield* ready
        })
      const statuses = yield* Effect.gen(function*() {
        const up = yield* readyUntil(200)
        // every connection to its host stalls, new ones too
        proxy.freeze({ all: true })
        const frozen = yield* readyUntil(503)
        proxy.thaw()
        const thawed = yield* readyUntil(200)
        return [up, frozen, thawed]
      }).pipe(
        Effect.scoped,
        Effect.provide(
          HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }).pipe(
            Layer.provide(servicesOn(throughProxy)),
            Layer.provideMerge(NodeHttpServer.layerTest),
            Layer.provide(TestDb.layer({ listenerCheckInterval: "300 millis", listenerMaxBackoff: "200 millis" }))
          )
        )
      )
      assert.deepStrictEqual(statuses, [200, 503, 200])
    }), { timeout: 60_000 })
})
