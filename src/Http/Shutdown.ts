import { Deferred, Effect } from "effect"

/**
 * The server's drain signal. When the process starts to stop, the server begins draining (`begin`): long-polls
 * answer the job's current state at once, event streams (SSE and RPC) end, a waiting claim answers what it can
 * claim then, and every response closes its connection. `Waits` looks it up optionally: without it (a host app
 * that serves the routes on its own server), nothing drains.
 */
export class Shutdown extends Effect.Service<Shutdown>()("jobwatch/Shutdown", {
  effect: Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    return {
      /** Completes when draining begins (at once when it already has). */
      draining: Deferred.await(started),
      isDraining: Deferred.isDone(started),
      /** Starts draining; idempotent. */
      begin: Deferred.succeed(started, undefined).pipe(Effect.asVoid)
    } as const
  })
}) {}
