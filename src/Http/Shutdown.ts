import { Deferred, Effect } from "effect"
import type { Trigger } from "../internal/firstOf.js"

/**
 * The server's drain signal. When the process starts to stop, the server begins draining (`begin`): long-polls
 * answer the job's current state at once, event streams (SSE and RPC) end, a waiting claim answers what it can
 * claim then, and every response closes its connection. `Waits` looks it up optionally: without it (a host app
 * that serves the routes on its own server), nothing drains.
 */
export class Shutdown extends Effect.Service<Shutdown>()("jobwatch/Shutdown", {
  effect: Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    /** Called when draining begins: the long-polls', which wait on callbacks rather than on a fiber each. */
    const listeners = new Set<() => void>()
    let drained = false
    const onDrain: Trigger = (fire) => {
      if (drained) {
        fire()
        return () => {}
      }
      listeners.add(fire)
      return () => void listeners.delete(fire)
    }
    return {
      /** Completes when draining begins (at once when it already has). */
      draining: Deferred.await(started),
      /** `draining` as a trigger for `firstOf`. */
      onDrain,
      isDraining: Deferred.isDone(started),
      /** Starts draining; idempotent. */
      begin: Deferred.succeed(started, undefined).pipe(
        Effect.tap(() => {
          drained = true
          const waiting = [...listeners]
          listeners.clear()
          for (const fire of waiting) fire()
        }),
        Effect.asVoid
      )
    } as const
  })
}) {}
