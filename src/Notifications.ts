import { Cause, Clock, Duration, Effect, Metric, Option, Queue, Schedule, Stream } from "effect"
import { JobWatchConfig } from "./Config.js"
import type { JobId } from "./Domain/JobId.js"
import { decodeOutcomePayload, EventsRepo, Listener, LocalEvents } from "./EventLog.js"
import { parseDoorbell } from "./EventLog/Doorbell.js"
import { makeRegistry } from "./EventLog/Registry.js"
import type { NotificationStats } from "./EventLog/Subscriptions.js"
import {
  burstDoorbells,
  burstJobs,
  chunkSize,
  registrationsIn,
  notifyToResolve,
  readsTotal,
  reconcilesTotal,
  wakeupsTotal
} from "./EventLog/Subscriptions.js"
import { makeStreak } from "./internal/retry.js"
import { PurgeRepo } from "./Jobs.js"

export type { NotificationStats, SubscribeFrom, Subscriber } from "./EventLog/Subscriptions.js"

/**
 * The notification path (ARCHITECTURE §3): doorbells, reconcile signals and the refresh schedule, coalesced
 * into batches; each batch reads, in one query per 1,000 jobs, the events after the known version of the jobs
 * that changed and are watched here, and hands them, in version order, to those jobs' subscribers.
 */
export class Notifications extends Effect.Service<Notifications>()("jobwatch/Notifications", {
  dependencies: [EventsRepo.Default, PurgeRepo.Default, Listener.Default, LocalEvents.Default],
  scoped: Effect.gen(function*() {
    const repo = yield* EventsRepo
    const purges = yield* PurgeRepo
    const listener = yield* Listener
    const local = yield* LocalEvents
    const config = yield* JobWatchConfig
    /** Wakes the consumer loop; what it is to do is in `pending`. */
    const work = yield* Queue.unbounded<void>()
    const stats = { wakeups: 0, reads: 0, reconciles: 0, jobsRead: 0 }
    /** What the next batch is to do, gathered synchronously as doorbells, reconciles and refreshes arrive. */
    const pending = {
      /** Doorbells that named a change of a watched job (the others cost nothing more than their parse). */
      doorbells: 0,
      /** When the first of them arrived (the notify-to-resolve metric). */
      firstDoorbellAt: undefined as number | undefined,
      /**
       * The watched jobs doorbells named, with the highest version named and whether that change may be terminal
       * without its outcome: checked again when the batch runs, since a read in flight may have caught up meanwhile.
       */
      changed: new Map<JobId, { version: number; mayBeTerminal: boolean }>(),
      /** Re-read every watched job: a reconcile, a refresh, or a doorbell that could not name its jobs. */
      everything: false
    }

    let kickPending = false
    const kick = () => {
      if (kickPending) return
      kickPending = true
      Queue.unsafeOffer(work, undefined)
    }
    const registry = makeRegistry(kick)
    const { index, needsSnapshot, needsCatchUp, lowestCursor, deliver, behind, deliverOutcomes } = registry

    /**
     * Reads and delivers the events of `ids`; those of `suspects` (a doorbell named them, or a reconcile) that had
     * none may have been purged: their subscribers are told when they are gone.
     */
    const readEvents = (ids: ReadonlyArray<JobId>, suspects: ReadonlySet<JobId> | "all") =>
      Effect.gen(function*() {
        for (let i = 0; i < ids.length; i += chunkSize) {
          const cursors: Array<{ id: JobId; after: number }> = []
          for (const id of ids.slice(i, i + chunkSize)) {
            const registrations = index.get(id)
            const after = registrations === undefined ? undefined : lowestCursor(registrations)
            if (after !== undefined) cursors.push({ id, after })
          }
          if (cursors.length === 0) continue
          stats.reads++
          yield* Metric.increment(readsTotal)
          const events = yield* repo.eventsAfter(cursors)
          const served = new Set<JobId>()
          let start = 0
          for (let k = 1; k <= events.length; k++) {
            if (k === events.length || events[k]!.jobId !== events[start]!.jobId) {
              served.add(events[start]!.jobId)
              deliver(events[start]!.jobId, events.slice(start, k))
              start = k
            }
          }
          stats.jobsRead += cursors.length
          // a job read for nothing may have been purged (which writes no event): its subscribers end
          const quiet = suspects !== "all" && suspects.size === 0 ? [] : cursors.flatMap((c) =>
            served.has(c.id) || (suspects !== "all" && !suspects.has(c.id)) ? [] : [c.id])
          if (quiet.length > 0) {
            for (const id of yield* purges.missing(quiet)) {
              for (const r of registrationsIn(index.get(id))) r.subscriber.onGone?.()
            }
          }
        }
      })

    const readSnapshots = (ids: ReadonlyArray<JobId>) =>
      Effect.gen(function*() {
        for (let i = 0; i < ids.length; i += chunkSize) {
          // still waiting for a snapshot (an outcome notification may have answered them meanwhile)
          const chunk = ids.slice(i, i + chunkSize).filter((id) => {
            for (const r of registrationsIn(index.get(id))) if (r.cursor === null) return true
            return false
          })
          if (chunk.length === 0) continue
          stats.reads++
          yield* Metric.increment(readsTotal)
          const outcomes = yield* repo.outcomes(chunk)
          const byId = new Map(outcomes.map((o) => [o.id, o]))
          for (const id of chunk) {
            const outcome = byId.get(id)
            for (const r of registrationsIn(index.get(id))) {
              if (r.cursor !== null) continue
              r.cursor = outcome?.version ?? 0
              r.subscriber.onSnapshot?.(outcome)
            }
          }
          stats.jobsRead += chunk.length
        }
      })

    /**
     * Hands the outcomes a doorbell carries to their waiters, then notes the jobs it names that are watched here by
     * a subscriber behind its version; wakes the consumer if there is any. Runs in the connection's notification
     * callback.
     */
    const onDoorbell = (payload: string) => {
      // nothing watched here (a worker process): nothing to parse. A subscription registered later reads what came
      // before it (its snapshot or catch-up), so a doorbell heard while none was registered is no one's
      if (index.size === 0) return
      const arrived = performance.now()
      const doorbell = parseDoorbell(payload)
      let relevant = doorbell.everything
      if (doorbell.everything) pending.everything = true
      if (doorbell.malformed) warnUndecoded(payload)
      // the outcomes it carries resolve their waiters at once, without a read
      if (doorbell.outcomes.length > 0 && deliverOutcomes(doorbell.outcomes) > 0) {
        notifyToResolve.unsafeUpdate((performance.now() - arrived) / 1000, [])
      }
      const { changes, uncarried } = doorbell
      if (index.size > 0) {
        for (let i = 0; i < changes.length; i += 2) {
          const id = changes[i] as JobId
          const slot = index.get(id)
          if (slot === undefined) continue
          const version = changes[i + 1] as number
          const mayBeTerminal = uncarried === "any" || uncarried.has(id)
          if (behind(slot, version, mayBeTerminal)) {
            const known = pending.changed.get(id)
            pending.changed.set(id, {
              version: Math.max(version, known?.version ?? 0),
              mayBeTerminal: mayBeTerminal || known?.mayBeTerminal === true
            })
            relevant = true
          }
        }
      }
      if (!relevant) return
      pending.doorbells++
      pending.firstDoorbellAt ??= performance.now()
      kick()
    }

    /** Re-read everything watched at the next batch (a reconcile or a refresh). */
    const rereadAll = () => {
      pending.everything = true
      kick()
    }

    /** Handles what is pending as one batch; answers how many jobs it read and how many doorbells it served. */
    const handle = Effect.gen(function*() {
      stats.wakeups++
      yield* Metric.increment(wakeupsTotal)
      const { doorbells, everything, firstDoorbellAt } = pending
      // a job whose subscribers have seen the change by now (a read that was in flight when its doorbell came)
      // costs no read
      const named = new Set<JobId>()
      for (const [id, change] of pending.changed) {
        const slot = index.get(id)
        if (slot !== undefined && behind(slot, change.version, change.mayBeTerminal)) named.add(id)
      }
      const changed = new Set<JobId>([...needsCatchUp, ...named])
      needsCatchUp.clear()
      pending.changed.clear()
      pending.doorbells = 0
      pending.everything = false
      pending.firstDoorbellAt = undefined
      if (everything) {
        stats.reconciles++
        yield* Metric.increment(reconcilesTotal)
      }
      const before = stats.jobsRead
      // a catch-up read of a new subscriber that finds nothing is the common case, not a sign of a purge
      yield* readEvents(everything ? [...index.keys()] : [...changed], everything ? "all" : named)
      if (needsSnapshot.size > 0) {
        const ids = [...needsSnapshot]
        needsSnapshot.clear()
        yield* readSnapshots(ids)
      }
      if (firstDoorbellAt !== undefined) yield* Metric.update(notifyToResolve, (performance.now() - firstDoorbellAt) / 1000)
      // a subscriber that registered during a read and found a gap is served by the next batch
      if (needsCatchUp.size > 0) kick()
      return { jobsRead: stats.jobsRead - before, doorbells }
    })

    /**
     * The consumer loop: a lone signal is handled at once; signals that arrive while a batch is handled form
     * the next batch; after a burst-sized batch the next one may wait up to `debounce` (leading-edge throttle,
     * which never starves, unlike `Stream.debounce`).
     */
    const consume = Effect.gen(function*() {
      const streak = yield* makeStreak("the notification loop", { cap: config.retryMaxBackoff })
      const windowMs = Duration.toMillis(config.debounce)
      let lastStart = Number.NEGATIVE_INFINITY
      let burst = false
      while (true) {
        yield* Queue.take(work)
        if (burst) {
          const wait = lastStart + windowMs - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        }
        yield* Queue.takeAll(work)
        kickPending = false
        lastStart = yield* Clock.currentTimeMillis
        const served = yield* handle.pipe(
          Effect.tap(() => streak.failures() > 0 ? streak.succeeded : Effect.void),
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.gen(function*() {
              // re-read everything watched: whatever this batch was to deliver is among it
              for (const [id, slot] of index) {
                let snapshot = false
                for (const r of registrationsIn(slot)) snapshot ||= r.cursor === null
                if (snapshot) needsSnapshot.add(id)
                else needsCatchUp.add(id)
              }
              // the next batch waits out the backoff, however many signals arrive meanwhile (they join it)
              yield* Effect.sleep(yield* streak.failed(cause))
              kick()
              return { jobsRead: 0, doorbells: 0 }
            })
          )
        )
        burst = served.jobsRead >= burstJobs || served.doorbells >= burstDoorbells
      }
    })

    // the in-process fast path: events of transitions committed by this process, at once
    yield* local.subscribe((event) => {
      if (!index.has(event.jobId)) return
      deliver(event.jobId, [event])
      if (needsCatchUp.size > 0) kick()
    }, () => index.size > 0)
    // its length only: a payload carries results, which are not for the logs
    const warnUndecoded = (payload: string) =>
      Effect.runFork(Effect.logWarning(`outcomes of ${payload.length} characters could not be decoded`))
    // the outcome channel of the doorbell's older shape, sent by a process of an earlier version (a mixed cluster)
    yield* listener.on("outcome", (payload) => {
      const outcomes = decodeOutcomePayload(payload)
      // never expected: the doorbell that follows (of the older shape) makes the waiters read instead
      if (outcomes === undefined) warnUndecoded(payload)
      else deliverOutcomes(outcomes)
    })

    yield* listener.on("doorbell", onDoorbell)
    yield* listener.on("reconcile", rereadAll)
    if (Option.isSome(config.refreshInterval)) {
      yield* Effect.forkScoped(
        Stream.fromSchedule(Schedule.spaced(config.refreshInterval.value)).pipe(
          Stream.runForEach(() => Effect.sync(rereadAll))
        )
      )
    }
    yield* Effect.forkScoped(consume)

    return {
      subscribe: registry.subscribe,
      /** `subscribeMany` without a scope: registers at once and answers how to unregister (idempotent). */
      listen: registry.registerNow,
      subscribeMany: registry.subscribeMany,
      awaitWith: registry.awaitWith,
      awaitOne: registry.awaitOne,
      /** Jobs with at least one subscriber in this process. */
      watchedCount: Effect.sync(() => index.size),
      subscriberCount: Effect.sync(registry.subscriberCount),
      stats: Effect.sync((): NotificationStats => ({ ...stats }))
    } as const
  }).pipe(Effect.annotateLogs("module", "Notifications"))
}) {}
