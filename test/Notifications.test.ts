import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Layer, Redacted } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import { makeJobId } from "../src/Domain/JobId.js"
import * as JobWatch from "../src/JobWatch.js"
import { awaitConnected, Listener } from "../src/EventLog/Listener.js"
import { Notifications } from "../src/Notifications.js"
import { toNextWakeUp } from "./support/clock.js"
import { capturingLogs, linesMatching } from "./support/logs.js"
import * as Proxy from "./support/proxy.js"
import * as TestDb from "./support/TestDb.js"
import { clockAtNow } from "./support/workers.js"

describe("Notifications", () => {
  it.scoped("with the database gone the loop backs off and logs its first failure, a line per cap, its recovery", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const proxy = yield* Proxy.make
        const schema = TestDb.freshSchema()
        yield* Effect.addFinalizer(() => Proxy.dropSchema(schema))
        const services = Layer.merge(Notifications.Default, Listener.Default).pipe(
          Layer.provide(JobWatch.MigrationsLive),
          Layer.provide(PgClient.layer({ url: Redacted.make(proxy.url), maxConnections: 4 })),
          Layer.provide(JobWatchConfig.layer({ schema, refreshInterval: null, retryMaxBackoff: "10 seconds" })),
          Layer.provide(clockAtNow)
        )
        yield* Effect.gen(function*() {
          const notifications = yield* Notifications
          yield* awaitConnected(yield* Listener)
          // a subscriber's snapshot read is a batch of the loop: it works while the database is there
          const first = yield* Deferred.make<void>()
          yield* notifications.subscribe(makeJobId(), { snapshot: true }, {
            onEvents: () => undefined,
            onSnapshot: () => Deferred.unsafeDone(first, Effect.void)
          })
          yield* Deferred.await(first)

          yield* proxy.cut()
          const second = yield* Deferred.make<void>()
          yield* notifications.subscribe(makeJobId(), { snapshot: true }, {
            onEvents: () => undefined,
            onSnapshot: () => Deferred.unsafeDone(second, Effect.void)
          })
          const start = yield* Clock.currentTimeMillis
          const before = (yield* notifications.stats).wakeups
          // time moves from one wake-up to the next until the loop has failed 25 times
          for (let i = 0; i < 500 && (yield* notifications.stats).wakeups < before + 25; i++) yield* toNextWakeUp()
          const failures = (yield* notifications.stats).wakeups - before
          assert.isAtLeast(failures, 25)
          const elapsed = (yield* Clock.currentTimeMillis) - start
          const lines = yield* linesMatching(logs, /notification/)
          // the first failure, then at most one line per 10 s of failures
          assert.isAtMost(lines.length, 1 + Math.floor(elapsed / 10_000), lines.join("\n"))
          assert.match(lines[0]!, /^WARN the notification loop failed: .+; retrying with backoff$/)
          assert.isTrue(lines.every((line) => !line.includes("\n")), "no stack traces")
          // backing off to the cap: 25 tries take minutes, not 25 seconds
          assert.isAtLeast(elapsed, 100_000)

          // the database is back: the next try serves the waiting subscriber and logs the recovery
          yield* proxy.restore()
          const served = Effect.map(Deferred.poll(second), (poll) => poll._tag === "Some")
          for (let i = 0; i < 100 && !(yield* served); i++) yield* toNextWakeUp(served)
          yield* Deferred.await(second)
          const recovered = yield* linesMatching(logs, /notification loop recovered/)
          assert.strictEqual(recovered.length, 1)
          assert.match(recovered[0]!, /^INFO the notification loop recovered after \d+ failures in /)
        }).pipe(Effect.provide(services))
      })), { timeout: 120_000 })
})
