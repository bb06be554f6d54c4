import { Deferred, Effect, Exit, FiberId } from "effect"

/**
 * Concurrent runs of one key share one run, and no caller gets an answer that began before it asked: a call joins
 * the run queued for its key if that has not started; else it queues the next one, which starts when the run in
 * flight ends. So however many callers arrive together, a key has at most one run in flight and one queued.
 *
 * A run belongs to no caller: it is forked as a daemon, so a caller that leaves (its client went away) neither
 * interrupts it for the others nor waits for it. Only for reads that are the same for every caller of a key, and
 * never inside a transaction (the run would not be in the caller's).
 */
export const makeCoalescer = <A, E>() => {
  const queued = new Map<string, Deferred.Deferred<A, E>>()
  const inFlight = new Map<string, Deferred.Deferred<void>>()

  return <R>(key: string, run: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const waiting = queued.get(key)
      if (waiting !== undefined) return Deferred.await(waiting)
      const answer = Deferred.unsafeMake<A, E>(FiberId.none)
      queued.set(key, answer)
      const before = inFlight.get(key)
      const turn = Effect.gen(function*() {
        if (before !== undefined) yield* Deferred.await(before)
        queued.delete(key)
        const done = Deferred.unsafeMake<void>(FiberId.none)
        inFlight.set(key, done)
        const exit = yield* Effect.exit(run)
        if (inFlight.get(key) === done) inFlight.delete(key)
        Deferred.unsafeDone(done, Exit.void)
        Deferred.unsafeDone(answer, exit)
      })
      return Effect.zipRight(Effect.forkDaemon(turn), Deferred.await(answer))
    })
}
