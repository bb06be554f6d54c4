import { Clock, Deferred, Duration, Effect, Option, Stream } from "effect"
import { JobWatchConfig } from "../Config.js"
import { Listener } from "../EventLog.js"

/** How a waiting claim is run (`ClaimWaiters.claim`). */
export interface WaitingClaim<J, E, R> {
  /**
   * The ready keys that may have work for it: queue names, or `@type:<id>` for the tasks of a job type. Read at
   * each notification: `claimOnce` may change the set (a worker that serves a new job type).
   */
  readonly keys: ReadonlySet<string>
  /** One attempt; its jobs are the caller's once it answers. Run uninterruptibly (see `claim`). */
  readonly claimOnce: Effect.Effect<ReadonlyArray<J>, E, R>
  /** How long to wait for work when none is ready (0: answer what is ready). */
  readonly waitMs: number
  /** Ends the wait early (a server draining): the claim then answers what it has. */
  readonly until?: Effect.Effect<void> | undefined
  /** Gives back the jobs of an attempt whose caller went away before it was answered. */
  readonly giveBack: (jobs: ReadonlyArray<J>) => Effect.Effect<void>
}

/**
 * Claims that wait for work without polling: woken by the ready channel (a queue, or a job type, got a pending job)
 * or a reconnect of the LISTEN connection, with the configured refresh interval as the safety net.
 */
export class ClaimWaiters extends Effect.Service<ClaimWaiters>()("jobwatch/ClaimWaiters", {
  dependencies: [Listener.Default],
  scoped: Effect.gen(function*() {
    const listener = yield* Listener
    const config = yield* JobWatchConfig
    const waiting = new Set<{ readonly keys: ReadonlySet<string>; readonly wake: () => void }>()
    yield* listener.on("ready", (payload) => {
      const keys = payload === "*" ? undefined : payload.split(",")
      for (const waiter of waiting) {
        // the payload's keys are few; a waiter's may be many (a worker serving many job types)
        if (keys === undefined || keys.some((key) => waiter.keys.has(key))) waiter.wake()
      }
    })
    yield* listener.state.changes.pipe(
      Stream.filter((state) => state.connected),
      Stream.runForEach(() => Effect.sync(() => waiting.forEach((waiter) => waiter.wake()))),
      Effect.forkScoped
    )
    const safetyNetMs = Option.match(config.refreshInterval, {
      onNone: () => Number.POSITIVE_INFINITY,
      onSome: Duration.toMillis
    })

    /**
     * Runs `claimOnce` until it answers jobs, the wait passes or `until` fires. Each attempt is registered as a
     * waiter before it reads, so a job that becomes ready in between wakes it. The attempt itself is not
     * interruptible (an interruption would cancel its statement, which may have committed): a caller that went away
     * while it ran gets nothing, and its jobs are given back.
     */
    const claim = <J, E, R>(options: WaitingClaim<J, E, R>) =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + options.waitMs
        let stopWaiting = false
        const until = options.until === undefined
          ? Effect.never
          : Effect.zipRight(options.until, Effect.sync(() => void (stopWaiting = true)))
        while (true) {
          const woken = yield* Deferred.make<void>()
          const waiter = { keys: options.keys, wake: () => Deferred.unsafeDone(woken, Effect.void) }
          const jobs = yield* Effect.acquireUseRelease(
            Effect.sync(() => waiting.add(waiter)),
            () =>
              Effect.uninterruptibleMask((restore) =>
                Effect.gen(function*() {
                  const jobs = yield* options.claimOnce
                  if (jobs.length > 0) {
                    return Option.some(
                      yield* restore(Effect.succeed(jobs)).pipe(Effect.onInterrupt(() => options.giveBack(jobs)))
                    )
                  }
                  const remaining = deadline - (yield* Clock.currentTimeMillis)
                  if (remaining <= 0 || stopWaiting) return Option.some(jobs)
                  // interruptible whatever the caller's region: Worker.run claims uninterruptibly, so as not to
                  // lose an answer, and its shutdown must still end this wait
                  yield* Effect.interruptible(Deferred.await(woken).pipe(
                    Effect.timeoutOption(Duration.millis(Math.min(remaining, safetyNetMs))),
                    Effect.raceFirst(until)
                  ))
                  return Option.none()
                })
              ),
            () => Effect.sync(() => waiting.delete(waiter))
          )
          if (Option.isSome(jobs)) return jobs.value
        }
      })

    return { claim } as const
  })
}) {}
