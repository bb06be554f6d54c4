import { Duration, Effect, Option, Stream } from "effect"
import { CompletionWatcher } from "../CompletionWatcher.js"
import { JobWatchConfig } from "../Config.js"
import { checkWorker, CurrentUser } from "../Domain/Auth.js"
import type { JobId } from "../Domain/JobId.js"
import { makeCoalescer } from "../internal/coalesce.js"
import type { Trigger } from "../internal/firstOf.js"
import { firstOf, makeAlarms } from "../internal/firstOf.js"
import { Shutdown } from "./Shutdown.js"

/** The caller's owner scope (its own jobs; an admin's: all), for a service call. */
export const asOwner = <A, E, R>(f: (scope: { readonly owner: string | undefined }) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(CurrentUser, (user) => f({ owner: user.ownerScope }))

/**
 * The worker operations need the `worker` role (or `admin`), and a worker token acts only as the worker ids it may
 * use (`User.mayActAs`): on every surface, since the HTTP API and the RPC group both check it here.
 */
export const asWorker = (workerId: string) => Effect.flatMap(CurrentUser, (user) => checkWorker(user, workerId))

/**
 * What the HTTP API and the RPC group share about waiting: waits are capped by `maxWait`, answer at once when the
 * server drains (none when a host serves the routes itself), and streams end then.
 */
export class Waits extends Effect.Service<Waits>()("jobwatch/Waits", {
  scoped: Effect.gen(function*() {
    const watcher = yield* CompletionWatcher
    const config = yield* JobWatchConfig
    const shutdown = yield* Effect.serviceOption(Shutdown)
    const draining = Option.match(shutdown, { onNone: () => Effect.never, onSome: (shutdown) => shutdown.draining })
    /** `draining` as a trigger (`firstOf`): never fires when nothing drains. */
    const whenDrained: Trigger = Option.match(shutdown, {
      onNone: () => () => () => {},
      onSome: (shutdown) => shutdown.onDrain
    })
    // the long-polls' timeouts, on one fiber
    const alarms = yield* makeAlarms
    const cap = (wait: Duration.Duration | undefined) =>
      wait === undefined ? Duration.zero : Duration.min(wait, config.maxWait)

    // one coalescer for every shape of read: a key names its shape (`view`)
    const coalesce = makeCoalescer<unknown, unknown>()
    /** What a read answers, as a key: its shape and the caller's owner scope (a task's: its viewer). */
    const view = (shape: "job" | "status" | "task", scope: { readonly owner: string | undefined }) =>
      scope.owner === undefined ? `${shape}:all` : `${shape}:owner:${scope.owner}`

    /**
     * Reads a job with `read`; with a wait, answers when it is terminal (or, with `afterVersion`, when its version
     * passed it), or when the wait passed. The wait holds no database connection.
     *
     * The reads of polls and long-polls on one job with the same `view` (what `read` answers, from `view`) coalesce:
     * thousands of long-polls woken by one completion cost one or two reads, not one each. A read is shared only by
     * callers that asked before it started, so none gets a state older than its wake-up.
     */
    const longPoll = <A extends { readonly version: number; readonly terminal: boolean }, E, R>(
      id: JobId,
      view: string,
      read: Effect.Effect<A, E, R>,
      options: { readonly wait?: Duration.Duration | undefined; readonly afterVersion?: number | undefined }
    ) =>
      Effect.gen(function*() {
        const wait = cap(options.wait)
        const afterVersion = options.afterVersion
        const shared = coalesce(`${id}\u0000${view}`, read) as Effect.Effect<A, E, R>
        const first = yield* shared
        if (Duration.isZero(wait)) return first
        if (afterVersion === undefined ? first.terminal : first.version > afterVersion || first.terminal) return first
        // the job was found: its end (deleted meanwhile) shows in the final read; a drain answers the current
        // state as a timed-out wait does. No fiber but the caller's: thousands of long-polls cost their callbacks
        yield* firstOf([watcher.whenChanged(id, afterVersion), alarms.after(Duration.toMillis(wait)), whenDrained])
        return yield* shared
      })

    /** `CompletionWatcher.waitMany` for the caller, capped; a drain answers the current state, timed out. */
    const waitMany = (ids: ReadonlyArray<JobId>, mode: "all" | "any", timeout: Duration.Duration | undefined) =>
      asOwner(({ owner }) => {
        const options = { mode, timeout: timeout === undefined ? config.maxWait : cap(timeout), owner }
        return Effect.raceFirst(
          watcher.waitMany(ids, options),
          Effect.zipRight(draining, watcher.waitMany(ids, { ...options, timeout: 0 }))
        )
      })

    /** `stream`, ended when the server drains (the client resumes elsewhere from its last cursor). */
    const untilDrained = <A, E, R>(stream: Stream.Stream<A, E, R>) => Stream.interruptWhen(stream, draining)

    return { maxWait: config.maxWait, draining, whenDrained, cap, view, longPoll, waitMany, untilDrained } as const
  })
}) {}
