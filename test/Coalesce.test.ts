import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberId } from "effect"
import { makeCoalescer } from "../src/internal/coalesce.js"

/** A run that counts its starts and ends when its latch of that start is opened. */
const gatedRuns = Effect.sync(() => {
  const latches: Array<Deferred.Deferred<number, string>> = []
  const started: Array<Deferred.Deferred<void>> = []
  const startedAt = (i: number) => (started[i] ??= Deferred.unsafeMake<void>(FiberId.none))
  const run = Effect.suspend(() => {
    const latch = Deferred.unsafeMake<number, string>(FiberId.none)
    latches.push(latch)
    Deferred.unsafeDone(startedAt(latches.length - 1), Exit.void)
    return Deferred.await(latch)
  })
  /** Waits until the `n`th run (from 1) started; answers its latch. */
  const startOf = (n: number) => Effect.suspend(() => Effect.map(Deferred.await(startedAt(n - 1)), () => latches[n - 1]!))
  return { run, startOf, runs: () => latches.length }
})

describe("coalesced reads", () => {
  it.effect("callers that arrive together share one run; those that arrive during it share the next", () =>
    Effect.gen(function*() {
      const coalesce = makeCoalescer<number, string>()
      const { run, runs, startOf } = yield* gatedRuns
      const first = yield* Effect.all(Array.from({ length: 100 }, () => coalesce("k", run)), { concurrency: "unbounded" })
        .pipe(Effect.fork)
      const firstRun = yield* startOf(1)
      // asked while the first run is in flight: they need a fresh one, which waits for the first to end
      const second = yield* Effect.all(Array.from({ length: 100 }, () => coalesce("k", run)), { concurrency: "unbounded" })
        .pipe(Effect.fork)
      yield* Effect.yieldNow({ priority: 1 })
      assert.strictEqual(runs(), 1)
      yield* Deferred.succeed(firstRun, 1)
      assert.deepStrictEqual(new Set(yield* Fiber.join(first)), new Set([1]))
      const secondRun = yield* startOf(2)
      yield* Deferred.succeed(secondRun, 2)
      assert.deepStrictEqual(new Set(yield* Fiber.join(second)), new Set([2]))
      assert.strictEqual(runs(), 2)
    }))

  it.effect("other keys run on their own; a failure reaches every caller that shared the run", () =>
    Effect.gen(function*() {
      const coalesce = makeCoalescer<number, string>()
      const { run, startOf } = yield* gatedRuns
      const a = yield* Effect.fork(Effect.all([coalesce("a", run), coalesce("a", run)].map(Effect.flip), { concurrency: 2 }))
      const runA = yield* startOf(1)
      const b = yield* Effect.fork(coalesce("b", run))
      const runB = yield* startOf(2)
      yield* Deferred.fail(runA, "gone")
      yield* Deferred.succeed(runB, 7)
      assert.deepStrictEqual(yield* Fiber.join(a), ["gone", "gone"])
      assert.strictEqual(yield* Fiber.join(b), 7)
    }))

  it.effect("a caller that leaves neither interrupts the run for the others nor waits for it", () =>
    Effect.gen(function*() {
      const coalesce = makeCoalescer<number, string>()
      const { run, startOf } = yield* gatedRuns
      const leaving = yield* Effect.fork(coalesce("k", run))
      const staying = yield* Effect.fork(coalesce("k", run))
      const only = yield* startOf(1)
      yield* Fiber.interrupt(leaving)
      yield* Deferred.succeed(only, 3)
      assert.strictEqual(yield* Fiber.join(staying), 3)
    }))
})
