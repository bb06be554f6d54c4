import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Logger, Ref, TestClock } from "effect"
import { backoffMillis, makeStreak, retrying } from "../src/internal/retry.js"

/** Runs `effect` with a logger that keeps every message. */
const capturingLogs = <A, E>(effect: (logs: Ref.Ref<ReadonlyArray<string>>) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const logs = yield* Ref.make<ReadonlyArray<string>>([])
    const logger = Logger.make(({ logLevel, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      Effect.runSync(Ref.update(logs, (all) => [...all, `${logLevel.label} ${text}`]))
    })
    return yield* effect(logs).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

describe("retry streaks", () => {
  it("backoff is exponential from the base, capped, with half of it random", () => {
    assert.strictEqual(backoffMillis(1, 100, 10_000, 0), 50)
    assert.strictEqual(backoffMillis(1, 100, 10_000, 1), 100)
    assert.strictEqual(backoffMillis(4, 100, 10_000, 1), 800)
    assert.strictEqual(backoffMillis(20, 100, 10_000, 0), 5000)
    assert.strictEqual(backoffMillis(1000, 100, 10_000, 1), 10_000)
  })

  it.effect("a streak of failures logs its first, then one line per cap with the count, then its recovery", () =>
    capturingLogs((logs) =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        const streak = yield* makeStreak("the test loop", { cap: "10 seconds" })
        // fails 40 times (about 3 minutes of backoff at a 10 s cap), then succeeds
        const flaky = Ref.updateAndGet(attempts, (n) => n + 1).pipe(
          Effect.flatMap((n) => n <= 40 ? Effect.fail(new Error(`database down (${n})`)) : Effect.succeed(n))
        )
        const fiber = yield* Effect.fork(retrying(flaky, streak))
        for (let i = 0; i < 60 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust(Duration.seconds(10))
        assert.strictEqual(yield* Fiber.join(fiber), 41)
        const lines = yield* Ref.get(logs)
        assert.match(lines[0]!, /^WARN the test loop failed: database down \(1\); retrying with backoff$/)
        const still = lines.filter((l) => l.includes("still failing"))
        // at most one line per 10 s of a streak that lasted a few minutes, each with its count
        assert.isAbove(still.length, 5)
        assert.isBelow(still.length, 30)
        assert.match(still[0]!, /^WARN the test loop still failing: \d+ failures in/)
        assert.match(lines[lines.length - 1]!, /^INFO the test loop recovered after 40 failures in/)
        assert.strictEqual(lines.length, 2 + still.length)
        assert.strictEqual(streak.failures(), 0)
      })))

  it.effect("interruption is not retried", () =>
    Effect.gen(function*() {
      const streak = yield* makeStreak("the test loop", { cap: "1 second" })
      const exit = yield* Effect.exit(retrying(Effect.interrupt, streak))
      assert.isTrue(exit._tag === "Failure")
      assert.strictEqual(streak.failures(), 0)
    }))
})
