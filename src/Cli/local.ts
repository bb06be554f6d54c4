// The commands of `jobwatch` that work on the database itself (`migrate`, `purge`): loaded by the bundled CLI from
// the built modules (`dist/Cli/local.js`, beside `sql/`), and answering Promises, so that the two copies of Effect
// (the bundle's, and this one's) never share a value.
import { DateTime, Duration, Effect, Layer, Logger, LogLevel } from "effect"
import { JobWatchConfig } from "../Config.js"
import * as Database from "../Database.js"
import * as Migrations from "../Database/Migrations.js"
import { Jobs } from "../Jobs.js"
import { oneLine } from "./oneLine.js"

// the command prints what it did; the services' own lines only when something is wrong
const onDatabase = Layer.provideMerge(Database.layer, JobWatchConfig.layerConfig).pipe(
  Layer.provideMerge(Logger.minimumLogLevel(LogLevel.Warning))
)

/** Runs `effect`, failing with one Error of one line. */
const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.mapError(effect, (error) => new Error(oneLine(error))))

/** Runs the pending migrations (under the migration lock, as `npm start` does); answers the versions applied. */
export const migrate = (): Promise<ReadonlyArray<number>> =>
  run(Migrations.run().pipe(Effect.provide(onDatabase)))

/** Purges the finished jobs that finished more than `olderThan` ago (and match the filter); answers how many. */
export const purge = (options: {
  readonly olderThanMs: number
  readonly status?: string | undefined
  readonly queue?: string | undefined
  readonly limit?: number | undefined
}): Promise<{ readonly purged: number; readonly more: boolean }> =>
  run(
    Effect.gen(function*() {
      yield* Migrations.run()
      const jobs = yield* Jobs
      const now = yield* DateTime.now
      return yield* jobs.purge({
        finishedBefore: DateTime.subtractDuration(now, Duration.millis(options.olderThanMs)),
        status: options.status,
        queue: options.queue,
        limit: options.limit
      })
    }).pipe(Effect.provide(Jobs.Default), Effect.provide(onDatabase), Effect.scoped)
  )
