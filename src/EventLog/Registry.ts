import { Effect } from "effect"
import type { JobOutcome } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import type { JobId } from "../Domain/JobId.js"
import type { Registration, Slot, SubscribeFrom, Subscriber } from "./Subscriptions.js"
import { addTo, registrationsIn, removeFrom, subscribersGauge, watchedJobs } from "./Subscriptions.js"

export type Entries = ReadonlyArray<{ readonly id: JobId; readonly from: SubscribeFrom; readonly subscriber: Subscriber }>

const snapshot: SubscribeFrom = { snapshot: true }

/**
 * The notification path's index (see Notifications.ts): job id → its subscribers' registrations, what they still
 * need read, and how they are handed what arrives. Everything here is synchronous: it runs in the connection's
 * notification callback, in the consumer loop, and in the registering fibers. `kick` wakes the consumer loop.
 */
export const makeRegistry = (kick: () => void) => {
  const index = new Map<JobId, Slot>()
  const needsSnapshot = new Set<JobId>()
  const needsCatchUp = new Set<JobId>()
  let subscriberCount = 0

  /** Process-wide figures: set directly, without the calling fiber's metric labels. */
  const publishGauges = () => {
    watchedJobs.unsafeUpdate(index.size, [])
    subscribersGauge.unsafeUpdate(subscriberCount, [])
  }

  /** The lowest cursor among the job's subscribers that follow events; `undefined` if none does yet. */
  const lowestCursor = (slot: Slot): number | undefined => {
    let lowest: number | undefined
    for (const r of registrationsIn(slot)) {
      if (r.cursor !== null && (lowest === undefined || r.cursor < lowest)) lowest = r.cursor
    }
    return lowest
  }

  /**
   * Hands each subscriber the events after its cursor, gap-free; a gap asks for a catch-up read instead, but for a
   * waiter (it takes `onOutcome`): it needs the terminal event only, and skipped the doorbells of the others.
   */
  const deliver = (id: JobId, events: ReadonlyArray<JobEvent>) => {
    const slot = index.get(id)
    if (slot === undefined) return
    for (const r of registrationsIn(slot)) {
      if (r.cursor === null) continue
      const cursor = r.cursor
      const fresh = events.filter((e) => e.version > cursor)
      if (fresh.length === 0) continue
      if (fresh[0]!.version !== cursor + 1 && r.subscriber.onOutcome === undefined) {
        // it registered (lower) while this read was in flight: read again from its cursor
        needsCatchUp.add(id)
        continue
      }
      r.cursor = fresh[fresh.length - 1]!.version
      r.subscriber.onEvents(fresh)
    }
  }

  /**
   * Whether a subscriber of the job may not have seen `version` yet: its cursor is behind, or it has none yet (its
   * first read may be in flight, on a snapshot taken before this change committed). A waiter (it takes `onOutcome`)
   * counts only when the change may be terminal without its outcome at hand: waiters read for nothing else.
   */
  const behind = (slot: Slot, version: number, mayBeTerminal: boolean) => {
    for (const r of registrationsIn(slot)) {
      if (!mayBeTerminal && r.subscriber.onOutcome !== undefined) continue
      if (r.cursor === null || r.cursor < version) return true
    }
    return false
  }

  /**
   * Hands terminal outcomes carried by a notification to the waiters of those jobs, at once and without a read;
   * their cursor moves to that version, so the doorbell that follows costs no read for them either.
   */
  /** Hands each outcome to the subscribers of its job that take outcomes; answers how many it was handed to. */
  const deliverOutcomes = (outcomes: ReadonlyArray<JobOutcome>) => {
    let handed = 0
    for (const outcome of outcomes) {
      const slot = index.get(outcome.id)
      if (slot === undefined) continue
      for (const r of registrationsIn(slot)) {
        if (r.subscriber.onOutcome === undefined) continue
        r.cursor = Math.max(r.cursor ?? 0, outcome.version)
        r.subscriber.onOutcome(outcome)
        handed++
      }
    }
    return handed
  }

  const register = (id: JobId, from: SubscribeFrom, subscriber: Subscriber): Registration => {
    const registration: Registration = { cursor: "snapshot" in from ? null : from.afterVersion, subscriber }
    index.set(id, addTo(index.get(id), registration))
    subscriberCount++
    if (registration.cursor === null) needsSnapshot.add(id)
    else needsCatchUp.add(id)
    return registration
  }

  const unregister = (id: JobId, registration: Registration) => {
    const [left, removed] = removeFrom(index.get(id), registration)
    if (removed) subscriberCount--
    if (left === undefined) index.delete(id)
    else index.set(id, left)
  }

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

  /**
   * `awaitWith` for one job's subscriber from a snapshot, with the fewest allocations: a waiter by the thousand
   * holds its registration, its subscriber and this closure, nothing more.
   */
  const awaitOne = <A, E>(
    id: JobId,
    subscriber: (settle: (result: Effect.Effect<A, E>) => void) => Subscriber
  ): Effect.Effect<A, E> =>
    Effect.async<A, E>((resume) => {
      // undefined while registering, null once settled
      let registration: Registration | null | undefined
      const release = () => {
        if (registration === null || registration === undefined) return
        unregister(id, registration)
        registration = null
        publishGauges()
      }
      const settle = (result: Effect.Effect<A, E>) => {
        if (registration === null) return
        release()
        registration = null
        resume(result)
      }
      const made = register(id, snapshot, subscriber(settle))
      if (registration === null) unregister(id, made)
      else registration = made
      kick()
      publishGauges()
      return Effect.sync(release)
    })

  return {
    index,
    needsSnapshot,
    needsCatchUp,
    lowestCursor,
    deliver,
    behind,
    deliverOutcomes,
    registerNow,
    subscribeMany,
    awaitWith,
    awaitOne,
    subscribe,
    subscriberCount: () => subscriberCount
  } as const
}
