import { Duration, Effect, Option, Stream } from "effect"
import { CompletionWatcher } from "../CompletionWatcher.js"
import { JobWatchConfig } from "../Config.js"
import { checkWorker, CurrentUser } from "../Domain/Auth.js"
import type { JobId } from "../Domain/JobId.js"
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
  effect: Effect.gen(function*() {
    const watcher = yield* CompletionWatcher
    const config = yield* JobWatchConfig
    const draining = Option.match(yield* Effect.serviceOption(Shutdown), {
      onNone: () => Effect.never,
      onSome: (shutdown) => shutdown.draining
    })
    const cap = (wait: Duration.Duration | undefined) =>
      wait === undefined ? Duration.zero : Duration.min(wait, config.maxWait)

    /**
     * Reads a job with `read`; with a wait, answers when it is terminal (or, with `afterVersion`, when its version
     * passed it), or when the wait passed. The wait holds no database connection.
     */
    const longPoll = <A extends { readonly version: number; readonly terminal: boolean }, E, R>(
      id: JobId,
      read: Effect.Effect<A, E, R>,
      options: { readonly wait?: Duration.Duration | undefined; readonly afterVersion?: number | undefined }
    ) =>
      Effect.gen(function*() {
        const wait = cap(options.wait)
        const afterVersion = options.afterVersion
        const first = yield* read
        if (Duration.isZero(wait)) return first
        if (afterVersion === undefined ? first.terminal : first.version > afterVersion || first.terminal) return first
        const change = afterVersion === undefined
          ? watcher.waitFor(id).pipe(Effect.asVoid)
          : watcher.changes(id, afterVersion).pipe(Effect.asVoid)
        // the job was found: a failure of the wait (deleted meanwhile) shows in the final read; a drain answers the
        // current state as a timed-out wait does
        yield* change.pipe(Effect.timeoutOption(wait), Effect.ignore, Effect.raceFirst(draining))
        return yield* read
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

    return { maxWait: config.maxWait, draining, cap, longPoll, waitMany, untilDrained } as const
  })
}) {}
