import { PgClient } from "@effect/sql-pg"
import { Cause, Clock, Data, Duration, Effect, Exit, Metric, Option, Random, Ref } from "effect"
import pg from "pg"
import { JobWatchConfig } from "../Config.js"
import { makeStreak } from "../internal/retry.js"
import { clientConfig } from "../EventLog.js"
import { PurgeRepo } from "../Jobs.js"
import { recordChange } from "../Metrics/jobs.js"
import type { ReapedInQueue } from "./ReaperRepo.js"
import { ReaperRepo } from "./ReaperRepo.js"

/** What the reaper has done in this process (tests, diagnostics, `/ready`-style reporting). */
export interface ReaperState {
  /** Whether this process holds the cluster's reaper lock. */
  readonly leader: boolean
  readonly passes: number
  readonly promoted: number
  readonly leasesExpired: number
  readonly timedOut: number
  readonly workersForgotten: number
  /** Job types removed for being orphaned (no worker serves them, no task waits). */
  readonly jobTypesRemoved: number
  /** Finished jobs removed because they were older than `retention`. */
  readonly purged: number
  /** While leader: when (on the app's clock) the next pass starts. */
  readonly nextPassAt: Option.Option<Date>
}

/** A reaper's state before its first pass: not the leader, nothing done. */
export const initialReaperState: ReaperState = {
  leader: false,
  passes: 0,
  promoted: 0,
  leasesExpired: 0,
  timedOut: 0,
  workersForgotten: 0,
  jobTypesRemoved: 0,
  purged: 0,
  nextPassAt: Option.none()
}

class LockLost extends Data.TaggedError("LockLost")<{ readonly message: string }> {}

const leasesExpiredTotal = Metric.counter("jobwatch_leases_expired", {
  description: "held jobs whose lease expired (their worker died or hung), reaped",
  incremental: true
})
const timedOutTotal = Metric.counter("jobwatch_jobs_timed_out", {
  description: "attempts ended for running longer than their job's timeout",
  incremental: true
})
const promotedTotal = Metric.counter("jobwatch_jobs_promoted", {
  description: "scheduled jobs that became pending",
  incremental: true
})

const BATCH = 1000
/** Retention: jobs per purge statement, and statements per pass (a backlog is worked off over several passes). */
const PURGE_BATCH = 1000
const PURGE_STATEMENTS = 10
/** The shortest wait between passes, and the wait when work it saw due was not done (rows locked elsewhere). */
const MIN_WAIT_MS = 10
const OVERDUE_WAIT_MS = 100
/** How often a pass looks for orphaned job types when no worker was forgotten. */
const ORPHAN_CHECK_MS = 5000
/** A query on the lock connection unanswered this long (real time) counts as a dead connection. */
const LOCK_QUERY_TIMEOUT = Duration.seconds(10)
const liveClock = Clock.make()

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Purges the jobs that finished before `before`, `batch` per statement, while a statement comes back full, at most
 * `statements` of them, yielding between them. Answers the size of each batch; a last one that is full means that
 * more may be left.
 */
export const purgeFinished = (
  purge: PurgeRepo,
  before: Date,
  options: { readonly batch?: number; readonly statements?: number } = {}
) =>
  Effect.gen(function*() {
    const batch = options.batch ?? PURGE_BATCH
    const batches: Array<number> = []
    while (batches.length < (options.statements ?? PURGE_STATEMENTS)) {
      const purged = yield* purge.purge({ before }, batch)
      batches.push(purged.length)
      if (purged.length < batch) break
      yield* Effect.yieldNow()
    }
    return batches
  })

/**
 * Makes the reaper of this process on the lock connection `connection`. One reaper per cluster runs at a time:
 * the one whose dedicated connection holds a session-level advisory lock. The others try again every
 * `reaperInterval`, so that when the holder dies (its connection ends and PostgreSQL releases the lock) another
 * takes over. On each pass the leader promotes due scheduled jobs, returns jobs whose lease expired to the queue
 * (or fails them with `worker_lost`), ends attempts past their timeout, and forgets silent workers; it sleeps until
 * the next pass, the next scheduled job or the next lease expiry, whichever comes first, so a dead worker's job is
 * back when its lease ends whatever `reaperInterval` is. Failing passes and a lock connection that cannot connect
 * back off (capped at `retryMaxBackoff`) and log by streak. `campaign` (default: the `reaper` config) says whether
 * this process takes part in the election at all.
 */
export const make = (connection: pg.ClientConfig, options: { readonly campaign?: boolean } = {}) =>
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const repo = yield* ReaperRepo
    const purgeRepo = yield* PurgeRepo
    const state = yield* Ref.make<ReaperState>(initialReaperState)
    const intervalMs = Duration.toMillis(config.reaperInterval)
    const lockKey = `${config.schema}.reaper`

    const drain = (step: (now: Date) => Effect.Effect<ReadonlyArray<ReapedInQueue>>, now: Date) =>
      Effect.gen(function*() {
        let total = 0
        while (true) {
          const changed = yield* step(now)
          for (const job of changed) recordChange(job.queue, job.previousStatus, job.status)
          total += changed.length
          if (changed.length < BATCH) return total
        }
      })

    let lastOrphanCheck = Number.NEGATIVE_INFINITY
    /** One pass; answers when the next one should start (ms from now). */
    const pass = Effect.gen(function*() {
      const now = new Date(yield* Clock.currentTimeMillis)
      const promoted = yield* drain((at) => repo.promoteDue(at, BATCH), now)
      const leasesExpired = yield* drain((at) => repo.reapExpiredLeases(at, BATCH), now)
      const timedOut = yield* drain((at) => repo.reapTimeouts(at, BATCH), now)
      const forgotten = yield* repo.forgetWorkers(new Date(now.getTime() - Duration.toMillis(config.workerTimeout)))
      // orphans come of forgotten workers mostly; the others (a type unlinked, or one whose last task was
      // claimed after its workers went) are found within ORPHAN_CHECK_MS
      const checkOrphans = forgotten.length > 0 || now.getTime() - lastOrphanCheck >= ORPHAN_CHECK_MS
      if (checkOrphans) lastOrphanCheck = now.getTime()
      const jobTypesRemoved = checkOrphans ? yield* repo.removeOrphanTypes : 0
      const purgedBatches = Option.isNone(config.retention)
        ? []
        : yield* purgeFinished(purgeRepo, new Date(now.getTime() - Duration.toMillis(config.retention.value)))
      const purged = purgedBatches.reduce((sum, n) => sum + n, 0)
      const purgeLeft = (purgedBatches.at(-1) ?? 0) >= PURGE_BATCH
      yield* Metric.incrementBy(promotedTotal, promoted)
      yield* Metric.incrementBy(leasesExpiredTotal, leasesExpired)
      yield* Metric.incrementBy(timedOutTotal, timedOut)
      yield* Ref.update(state, (s) => ({
        ...s,
        passes: s.passes + 1,
        promoted: s.promoted + promoted,
        leasesExpired: s.leasesExpired + leasesExpired,
        timedOut: s.timedOut + timedOut,
        workersForgotten: s.workersForgotten + forgotten.length,
        jobTypesRemoved: s.jobTypesRemoved + jobTypesRemoved,
        purged: s.purged + purged
      }))
      if (leasesExpired + timedOut > 0) {
        yield* Effect.logInfo(`reaper: ${leasesExpired} expired leases and ${timedOut} timeouts handled`)
      }
      if (purged > 0) yield* Effect.logDebug(`reaper: ${purged} finished jobs past their retention purged`)
      // a backlog of old jobs: the next pass comes soon, and each leaves time for the other work
      if (purgeLeft) return OVERDUE_WAIT_MS
      const next = yield* repo.nextDue
      const after = yield* Clock.currentTimeMillis
      // a lease a worker takes while this pass sleeps expires no sooner than 1.5 × its heartbeat interval: waking
      // at least every interval (of the quickest known worker) finds it before it has been expired for half of one
      const cap = Option.match(next.heartbeatMs, {
        onNone: () => intervalMs,
        onSome: (ms) => Math.min(intervalMs, Math.max(OVERDUE_WAIT_MS, ms))
      })
      return Option.match(next.at, {
        onNone: () => cap,
        // a lease has expired once `now` is past it: wake just after
        onSome: (at) => {
          const until = at.getTime() - after + 1
          return until > 0 ? Math.max(MIN_WAIT_MS, Math.min(cap, until)) : Math.min(cap, OVERDUE_WAIT_MS)
        }
      })
    }).pipe(Effect.withSpan("Reaper.pass"))

    const passStreak = yield* makeStreak("the reaper's pass", { cap: config.retryMaxBackoff })
    const lockStreak = yield* makeStreak("the reaper's lock connection", { cap: config.retryMaxBackoff })

    /** One lock connection's life: tries the lock every interval; while held, reaps; fails when the connection does. */
    const session = Effect.gen(function*() {
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const client = new pg.Client(connection)
            client.on("error", () => undefined)
            await client.connect()
            return client
          },
          catch: (cause) => new LockLost({ message: `cannot connect: ${describe(cause)}` })
        }),
        (client, exit) =>
          Exit.isInterrupted(exit)
            ? Effect.promise(() => client.end().catch(() => undefined)).pipe(
              Effect.timeoutOption(Duration.seconds(1)),
              Effect.withClock(liveClock),
              Effect.ensuring(Effect.sync(() => void client.connection.stream.destroy()))
            )
            // a dead or frozen connection: end() could wait forever
            : Effect.sync(() => void client.connection.stream.destroy())
      )
      const query = <A extends Record<string, unknown>>(text: string, values: ReadonlyArray<unknown>) =>
        Effect.tryPromise({
          try: () => client.query<A>(text, [...values]),
          catch: (cause) => new LockLost({ message: describe(cause) })
        }).pipe(
          Effect.timeoutFail({
            duration: LOCK_QUERY_TIMEOUT,
            onTimeout: () => new LockLost({ message: `no answer within ${Duration.format(LOCK_QUERY_TIMEOUT)}` })
          }),
          Effect.withClock(liveClock)
        )
      while (true) {
        const { rows } = yield* query<{ locked: boolean }>(
          "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked",
          [lockKey]
        )
        if (lockStreak.failures() > 0) yield* lockStreak.succeeded
        if (rows[0]?.locked === true) break
        // another process reaps; try again after an interval, jittered so that followers do not ask in step
        yield* Effect.sleep(Duration.millis(intervalMs * (0.75 + 0.5 * (yield* Random.next))))
      }
      yield* Ref.update(state, (s) => ({ ...s, leader: true }))
      yield* Effect.logInfo("this process is the reaper")
      yield* Effect.ensuring(
        Effect.gen(function*() {
          while (true) {
            // still holding the lock? (the connection is alive: a session lock lives as long as it)
            yield* query("SELECT 1", [])
            const wait = yield* pass.pipe(
              Effect.tap(() => passStreak.failures() > 0 ? passStreak.succeeded : Effect.void),
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause)
                  ? Effect.failCause(cause)
                  : Effect.map(passStreak.failed(cause), Duration.toMillis)
              )
            )
            const now = yield* Clock.currentTimeMillis
            yield* Ref.update(state, (s) => ({ ...s, nextPassAt: Option.some(new Date(now + wait)) }))
            yield* Effect.sleep(Duration.millis(wait))
          }
        }),
        Ref.update(state, (s) => ({ ...s, leader: false, nextPassAt: Option.none() }))
      )
    }).pipe(Effect.scoped)

    if (options.campaign ?? config.reaper) {
      yield* Effect.gen(function*() {
        while (true) {
          const error = yield* Effect.flip(session)
          yield* Effect.sleep(yield* lockStreak.failed(error))
        }
      }).pipe(Effect.interruptible, Effect.forkScoped)
    }

    return {
      state: Ref.get(state),
      /** Runs one pass now, whether or not this process is the leader (tests, admin tools). */
      runOnce: pass
    } as const
  })

/** The reaper of this process (see `make`), on a dedicated connection to the `PgClient`'s database. */
export class Reaper extends Effect.Service<Reaper>()("jobwatch/Reaper", {
  dependencies: [ReaperRepo.Default, PurgeRepo.Default],
  scoped: Effect.flatMap(PgClient.PgClient, (client) => make(clientConfig(client.config, "jobwatch-reaper"))).pipe(
    Effect.annotateLogs("module", "Reaper")
  )
}) {}
