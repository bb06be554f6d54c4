import { Effect, Layer, TestClock } from "effect"
import type { JobWatchConfigInput } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import * as JobWatch from "../../src/JobWatch.js"
import { allRepos, Repos } from "./repos.js"
import * as TestDb from "./TestDb.js"

/**
 * The test clock is set to the wall clock's time before the services start (so that the database's and the
 * services' times agree; setting it later would replay every schedule's ticks since 1970).
 */
export const clockAtNow = Layer.effectDiscard(
  // under the live clock (it.live) there is nothing to set
  Effect.clockWith((clock) => "setTime" in clock ? TestClock.setTime(Date.now()) : Effect.void)
)

/** jobwatch with its repositories on a fresh schema; the reaper off unless `config` turns it on. */
export const testLayer = (config: JobWatchConfigInput = {}) =>
  Layer.mergeAll(JobWatch.layer, allRepos.pipe(Layer.provide(JobWatch.MigrationsLive)))
    .pipe(
      Layer.provideMerge(TestDb.layer({ reaper: false, ...config }, { maxConnections: 30 })),
      Layer.provide(clockAtNow)
    )

/** Waits (really, not on the test clock) until `check` holds, for up to `seconds`. */
export const eventually = <A, E, R>(check: Effect.Effect<A, E, R>, holds: (a: A) => boolean, seconds = 20) =>
  Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    while (true) {
      const value = yield* check
      if (holds(value)) return value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`still not so after ${seconds} s: ${JSON.stringify(value)}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
    }
  })

/** The events of a job, oldest first. */
export const eventsOf = (id: JobId) => Effect.flatMap(Repos, (repo) => repo.eventsOf(id, 0))

