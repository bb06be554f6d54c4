import { Metric, MetricBoundaries } from "effect"
import type { JobOutcome } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"

// The notification path's subscribers, the figures that shape its batches, and its metrics (see Notifications.ts).

/**
 * One subscriber of one job. `cursor` is the last version it has seen; `null` asks for the job's current
 * outcome first (`onSnapshot`), after which it follows the events.
 */
export interface Subscriber {
  readonly onEvents: (events: ReadonlyArray<JobEvent>) => void
  /** The job's outcome when the subscription started; `undefined` when there is no such job. */
  readonly onSnapshot?: (outcome: JobOutcome | undefined) => void
  /**
   * A terminal outcome carried by the notification itself (no read). A subscriber that takes it needs no events
   * up to that version: waiters, not streams.
   */
  readonly onOutcome?: (outcome: JobOutcome) => void
  /** The job no longer exists (it was purged): no event will come. */
  readonly onGone?: () => void
}

export type SubscribeFrom =
  | { readonly afterVersion: number }
  | { readonly snapshot: true }

export interface Registration {
  cursor: number | null
  readonly subscriber: Subscriber
}

/**
 * The registrations of one job in the index: the one registration itself (the common case: a waiter, without a
 * `Set` of its own), or a `Set` of them.
 */
export type Slot = Registration | Set<Registration>

export const registrationsIn = (slot: Slot | undefined): Iterable<Registration> =>
  slot === undefined ? [] : slot instanceof Set ? slot : [slot]

/** Adds `registration` to the job's slot; answers the slot to store. */
export const addTo = (slot: Slot | undefined, registration: Registration): Slot => {
  if (slot === undefined) return registration
  if (slot instanceof Set) return slot.add(registration)
  return new Set([slot, registration])
}

/** Removes `registration` from the job's slot; answers the slot left (`undefined`: none) and whether it was there. */
export const removeFrom = (slot: Slot | undefined, registration: Registration): [Slot | undefined, boolean] => {
  if (slot === undefined) return [undefined, false]
  if (!(slot instanceof Set)) return slot === registration ? [undefined, true] : [slot, false]
  const removed = slot.delete(registration)
  if (slot.size === 0) return [undefined, removed]
  if (slot.size === 1) return [slot.values().next().value!, removed]
  return [slot, removed]
}

/** Reads of the job tables made by the notification path (tests and benchmarks count them). */
export interface NotificationStats {
  readonly wakeups: number
  readonly reads: number
  readonly reconciles: number
  /** Jobs read and served: counted once what was read has been handed to the subscribers. */
  readonly jobsRead: number
}

export const chunkSize = 1000
/**
 * A batch that read at least this many jobs, or that found more than one doorbell waiting (they arrived while
 * the previous batch was being handled: traffic is concurrent), marks a burst: the next batch may then wait out
 * the rest of the `debounce` window. Doorbells one at a time are handled at once.
 */
export const burstJobs = 100
export const burstDoorbells = 2

export const watchedJobs = Metric.gauge("jobwatch_watched_jobs", { description: "jobs with at least one subscriber here" })
export const subscribersGauge = Metric.gauge("jobwatch_subscribers", { description: "waiters, long-polls and streams" })
export const wakeupsTotal = Metric.counter("jobwatch_wakeups", {
  description: "batches of doorbells (and refreshes) the notification path handled",
  incremental: true
})
export const readsTotal = Metric.counter("jobwatch_notification_reads", {
  description: "reads of the event log by the notification path",
  incremental: true
})
export const reconcilesTotal = Metric.counter("jobwatch_reconciles", {
  description: "reads of every watched job (after a reconnect, an overflowing doorbell, or the refresh schedule)",
  incremental: true
})
export const notifyToResolve = Metric.histogram(
  "jobwatch_notify_to_resolve_seconds",
  MetricBoundaries.exponential({ start: 0.00025, factor: 2, count: 14 }),
  "from a doorbell's arrival to its outcomes or events being handed to subscribers"
)
