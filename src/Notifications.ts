import { Cause, Clock, Duration, Effect, Metric, Option, Queue, Schedule, Stream } from "effect"
import { JobWatchConfig } from "./Config.js"
import type { JobEvent } from "./Domain/JobEvent.js"
import type { JobId } from "./Domain/JobId.js"
import { decodeOutcomePayload, EventsRepo, Listener, LocalEvents } from "./EventLog.js"
import type { NotificationStats, Registration, SubscribeFrom, Subscriber } from "./EventLog/Subscriptions.js"
import {
  burstDoorbells,
  burstJobs,
  chunkSize,
  notifyToResolve,
  readsTotal,
  reconcilesTotal,
  subscribersGauge,
  wakeupsTotal,
  watchedJobs
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
    const index = new Map<JobId, Set<Registration>>()
    const needsSnapshot = new Set<JobId>()
    const needsCatchUp = new Set<JobId>()
    let subscriberCount = 0
    const stats = { wakeups: 0, reads: 0, reconciles: 0, jobsRead: 0 }
    /** What the next batch is to do, gathered synchronously as doorbells, reconciles and refreshes arrive. */
    const pending = {
      /** Doorbells that named a change of a watched job (the others cost nothing more than their parse). */
      doorbells: 0,
      /** When the first of them arrived (the notify-to-resolve metric). */
      firstDoorbellAt: undefined as number | undefined,
      changed: new Set<JobId>(),
      /** Re-read every watched job: a reconcile, a refresh, or a doorbell that could not name its jobs. */
      everything: false
    }

    let kickPending = false
    const kick = () => {
      if (kickPending) return
      kickPending = true
      Queue.unsafeOffer(work, undefined)
    }

    /** Process-wide figures: set directly, without the calling fiber's metric labels. */
    const publishGauges = () => {
      watchedJobs.unsafeUpdate(index.size, [])
      subscribersGauge.unsafeUpdate(subscriberCount, [])
    }

    /** The lowest cursor among the job's subscribers that follow events; `undefined` if none does yet. */
    const lowestCursor = (registrations: Set<Registration>): number | undefined => {
      let lowest: number | undefined
      for (const r of registrations) {
        if (r.cursor !== null && (lowest === undefined || r.cursor < lowest)) lowest = r.cursor
      }
      return lowest
    }

    /** Hands each subscriber the events after its cursor, gap-free; a gap asks for a catch-up read instead. */
    const deliver = (id: JobId, events: ReadonlyArray<JobEvent>) => {
      const registrations = index.get(id)
      if (registrations === undefined) return
      for (const r of registrations) {
        if (r.cursor === null) continue
        const cursor = r.cursor
        const fresh = events.filter((e) => e.version > cursor)
        if (fresh.length === 0) continue
        if (fresh[0]!.version !== cursor + 1) {
          // it registered (lower) while this read was in flight: read again from its cursor
          needsCatchUp.add(id)
          continue
        }
        r.cursor = fresh[fresh.length - 1]!.version
        r.subscriber.onEvents(fresh)
      }
    }

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
              for (const r of index.get(id) ?? []) r.subscriber.onGone?.()
            }
          }
        }
      })

    const readSnapshots = (ids: ReadonlyArray<JobId>) =>
      Effect.gen(function*() {
        for (let i = 0; i < ids.length; i += chunkSize) {
          // still waiting for a snapshot (an outcome notification may have answered them meanwhile)
          const chunk = ids.slice(i, i + chunkSize).filter((id) => {
            const registrations = index.get(id)
            return registrations !== undefined && [...registrations].some((r) => r.cursor === null)
          })
          if (chunk.length === 0) continue
          stats.reads++
          yield* Metric.increment(readsTotal)
          const outcomes = yield* repo.outcomes(chunk)
          const byId = new Map(outcomes.map((o) => [o.id, o]))
          for (const id of chunk) {
            const outcome = byId.get(id)
            for (const r of index.get(id) ?? []) {
              if (r.cursor !== null) continue
              r.cursor = outcome?.version ?? 0
              r.subscriber.onSnapshot?.(outcome)
            }
          }
          stats.jobsRead += chunk.length
        }
      })

    /**
     * Whether a subscriber of the job may not have seen `version` yet: its cursor is behind, or it has none yet (its
     * first read may be in flight, on a snapshot taken before this change committed).
     */
    const behind = (registrations: Set<Registration>, version: number) => {
      for (const r of registrations) if (r.cursor === null || r.cursor < version) return true
      return false
    }

    /**
     * Notes the jobs a doorbell names that are watched here by a subscriber behind its version; wakes the consumer
     * if there is any. Runs in the connection's notification callback.
     */
    const onDoorbell = (payload: string) => {
      let relevant = false
      if (payload === "*" || payload === "") {
        pending.everything = true
        relevant = true
      } else if (index.size > 0) {
        for (const pair of payload.split(",")) {
          const colon = pair.lastIndexOf(":")
          const id = pair.slice(0, colon) as JobId
          const registrations = index.get(id)
          if (registrations !== undefined && behind(registrations, Number(pair.slice(colon + 1)))) {
            pending.changed.add(id)
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
      const named = new Set(pending.changed)
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
      if (firstDoorbellAt !== undefined) yield* Metric.update(notifyToResolve, performance.now() - firstDoorbellAt)
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
              for (const [id, registrations] of index) {
                if ([...registrations].some((r) => r.cursor === null)) needsSnapshot.add(id)
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
    })
    /**
     * Hands terminal outcomes carried by a notification to the waiters of those jobs, at once and without a read;
     * their cursor moves to that version, so the doorbell that follows costs no read for them either.
     */
    const deliverOutcomes = (payload: string) => {
      const outcomes = decodeOutcomePayload(payload)
      if (outcomes === undefined) {
        // never expected: the doorbell that follows makes the waiters read instead
        // its length only: a payload carries results, which are not for the logs
        Effect.runFork(
          Effect.logWarning(`an outcome notification of ${payload.length} characters could not be decoded`)
        )
        return
      }
      for (const outcome of outcomes) {
        const registrations = index.get(outcome.id)
        if (registrations === undefined) continue
        for (const r of registrations) {
          if (r.subscriber.onOutcome === undefined) continue
          r.cursor = Math.max(r.cursor ?? 0, outcome.version)
          r.subscriber.onOutcome(outcome)
        }
      }
    }
    yield* listener.on("outcome", deliverOutcomes)

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

    const register = (id: JobId, from: SubscribeFrom, subscriber: Subscriber): Registration => {
      const registration: Registration = { cursor: "snapshot" in from ? null : from.afterVersion, subscriber }
      let registrations = index.get(id)
      if (registrations === undefined) {
        registrations = new Set()
        index.set(id, registrations)
      }
      registrations.add(registration)
      subscriberCount++
      if (registration.cursor === null) needsSnapshot.add(id)
      else needsCatchUp.add(id)
      return registration
    }

    const unregister = (id: JobId, registration: Registration) => {
      const registrations = index.get(id)
      if (registrations?.delete(registration)) subscriberCount--
      if (registrations !== undefined && registrations.size === 0) index.delete(id)
    }

    type Entries = ReadonlyArray<{ readonly id: JobId; readonly from: SubscribeFrom; readonly subscriber: Subscriber }>

    /** Registers the subscribers at once; answers how to unregister them (idempotent). */
    const registerNow = (entries: Entries): (() => void) => {
      const registrations = entries.map((entry) => register(entry.id, entry.from, entry.subscriber))
      kick()
      publishGauges()
      let registered = true
      return () => {
        if (!registered) return
        registered = false
        registrations.forEach((registration, i) => unregister(entries[i]!.id, registration))
        publishGauges()
      }
    }

    /**
     * Registers subscribers until the scope closes, all at once: each for its job `id`, from a version (it first
     * catches up on the events after it) or from a snapshot (it first gets the job's current outcome).
     * Registration happens before any read, so a change in between is never missed.
     */
    const subscribeMany = (entries: Entries) =>
      Effect.acquireRelease(Effect.sync(() => registerNow(entries)), (unregister) => Effect.sync(unregister)).pipe(
        Effect.asVoid
      )

    /**
     * Awaits what the subscribers of `entries` settle, registered (as `subscribeMany`) only until then: `settle`
     * unregisters them and resumes the waiting fiber, straight from the subscriber's callback; interruption
     * unregisters them too. No scope and no extra fiber step: the waiters' hot path.
     */
    const awaitWith = <A, E>(
      entries: (settle: (result: Effect.Effect<A, E>) => void) => Entries
    ): Effect.Effect<A, E> =>
      Effect.async<A, E>((resume) => {
        let unregister: (() => void) | undefined
        let settled = false
        const settle = (result: Effect.Effect<A, E>) => {
          if (settled) return
          settled = true
          unregister?.()
          resume(result)
        }
        unregister = registerNow(entries(settle))
        // settled while registering (not expected: subscribers are called from later batches)
        if (settled) unregister()
        return Effect.sync(unregister)
      })

    /** `subscribeMany` for one subscriber. */
    const subscribe = (id: JobId, from: SubscribeFrom, subscriber: Subscriber) =>
      subscribeMany([{ id, from, subscriber }])

    return {
      subscribe,
      subscribeMany,
      awaitWith,
      /** Jobs with at least one subscriber in this process. */
      watchedCount: Effect.sync(() => index.size),
      subscriberCount: Effect.sync(() => subscriberCount),
      stats: Effect.sync((): NotificationStats => ({ ...stats }))
    } as const
  })
}) {}
