import { Cause, Clock, Duration, Effect, Exit, Random } from "effect"

/**
 * The state of one background loop's run of failures: how long to wait before the next try, and what to log. A
 * streak logs its first failure at once (one line, a warning), then at most one line per backoff cap with the count
 * so far, and one line when it ends; never one line per retry, and never a stack trace.
 */
export interface Streak {
  /** Records a failure; answers the wait before the next try (exponential from `base`, capped, jittered). */
  readonly failed: (error: unknown) => Effect.Effect<Duration.Duration>
  /** Records a success: logs one line when it ends a streak. */
  readonly succeeded: Effect.Effect<void>
  /** Failures since the last success. */
  readonly failures: () => number
}

export interface StreakOptions {
  /** The longest wait between tries, and the spacing of the "still failing" lines. */
  readonly cap: Duration.DurationInput
  /** The first wait; doubled after every failure until `cap`. Default 100 ms. */
  readonly base?: Duration.DurationInput | undefined
}

/** One line for an error, a `Cause` or anything thrown: its message, and its cause's when it wraps one. */
export const describeError = (error: unknown): string => {
  const squashed = Cause.isCause(error) ? Cause.squash(error) : error
  if (squashed instanceof Error || (typeof squashed === "object" && squashed !== null && "message" in squashed)) {
    const e = squashed as { readonly message?: unknown; readonly cause?: unknown }
    const message = typeof e.message === "string" && e.message !== "" ? e.message : String(squashed)
    const inner = e.cause
    const innerMessage = typeof inner === "object" && inner !== null && "message" in inner &&
        typeof inner.message === "string" && inner.message !== "" && !message.includes(inner.message)
      ? `: ${inner.message}`
      : ""
    return `${message}${innerMessage}`.split("\n")[0]!
  }
  return String(squashed).split("\n")[0]!
}

/** The wait before try `failures + 1`: "equal jitter" (half fixed, half random) of `min(cap, base × 2^(failures-1))`. */
export const backoffMillis = (failures: number, baseMs: number, capMs: number, random: number): number => {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30))
  return ceiling / 2 + random * (ceiling / 2)
}

/** A new streak for the loop `what` (e.g. "the notification loop"). Times come from the `Clock`. */
export const makeStreak = (what: string, options: StreakOptions): Effect.Effect<Streak> =>
  Effect.sync(() => {
    const capMs = Duration.toMillis(Duration.decode(options.cap))
    const baseMs = Math.min(capMs, Duration.toMillis(Duration.decode(options.base ?? Duration.millis(100))))
    let failures = 0
    let since = 0
    let lastLogged = 0
    const failed = (error: unknown) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        failures++
        if (failures === 1) {
          since = now
          lastLogged = now
          yield* Effect.logWarning(`${what} failed: ${describeError(error)}; retrying with backoff`)
        } else if (now - lastLogged >= capMs) {
          lastLogged = now
          yield* Effect.logWarning(
            `${what} still failing: ${failures} failures in ${Duration.format(Duration.millis(now - since))}, ` +
              `the last: ${describeError(error)}`
          )
        }
        return Duration.millis(Math.round(backoffMillis(failures, baseMs, capMs, yield* Random.next)))
      })
    const succeeded = Effect.suspend(() => {
      if (failures === 0) return Effect.void
      const count = failures
      failures = 0
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.logInfo(
          `${what} recovered after ${count} ${count === 1 ? "failure" : "failures"} in ` +
            `${Duration.format(Duration.millis(now - since))}`
        ))
    })
    return { failed, succeeded, failures: () => failures }
  })

/**
 * Runs `effect` until it succeeds, waiting between tries as `streak` says (and logging as it does). Interruption
 * is not retried.
 */
export const retrying = <A, E, R>(effect: Effect.Effect<A, E, R>, streak: Streak): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    while (true) {
      const exit = yield* Effect.exit(effect)
      if (Exit.isSuccess(exit)) {
        yield* streak.succeeded
        return exit.value
      }
      if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
      yield* Effect.sleep(yield* streak.failed(exit.cause))
    }
  })
