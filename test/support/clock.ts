import { Chunk, Effect, TestClock } from "effect"

/**
 * Waits in real time (bounded) until some fiber sleeps on the test clock, and moves the clock to the earliest
 * wake-up; or until `done` holds. For loops whose waits are on the clock but whose work is real I/O.
 */
export const toNextWakeUp = (done: Effect.Effect<boolean> = Effect.succeed(false)) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000; i++) {
      if (yield* done) return
      const sleeps = yield* TestClock.sleeps()
      if (Chunk.isNonEmpty(sleeps)) return yield* TestClock.setTime(Math.min(...Chunk.toReadonlyArray(sleeps)))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Effect.die("nothing went to sleep on the test clock")
  })
