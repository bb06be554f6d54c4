import { Metric, MetricBoundaries, MetricLabel } from "effect"
import type { JobStatus } from "../Domain/JobStatus.js"

// The job families, counted by the process that made each change (every change is made once, by one process, so
// a sum over the processes of a cluster is the cluster's count), labelled by queue. Names have no `_total`: the
// Prometheus exporter adds it to counters once.

/** The most queues labelled by name in one process; the jobs of any other queue count under `queue="_other"`. */
export const MAX_QUEUE_LABELS = 200
export const OTHER_QUEUE = "_other"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

export const enqueued = counter("jobwatch_jobs_enqueued", "jobs created (an idempotency key's match is not one)")
export const started = counter("jobwatch_jobs_started", "attempts begun: pending or scheduled to claimed or running")
export const completed = counter("jobwatch_jobs_completed", "jobs completed")
export const failed = counter("jobwatch_jobs_failed", "jobs failed for good (after their last attempt)")
export const canceled = counter("jobwatch_jobs_canceled", "jobs canceled")
export const retried = counter("jobwatch_jobs_retried", "attempts that ended with another one to follow")
export const deleted = counter("jobwatch_jobs_deleted", "jobs deleted before a worker took them")

const secondsBuckets = MetricBoundaries.fromIterable([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600
])
export const waitSeconds = Metric.histogram(
  "jobwatch_job_wait_seconds",
  secondsBuckets,
  "from when a job was due (enqueued, its run time or its retry's) to its claim"
)
export const runSeconds = Metric.histogram(
  "jobwatch_job_run_seconds",
  secondsBuckets,
  "from an attempt's claim to its end (completed, failed, canceled, retried)"
)

// one label array per queue, kept: a metric caches its registry entry by the identity of the labels it is given
const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const other: ReadonlyArray<MetricLabel.MetricLabel> = [MetricLabel.make("queue", OTHER_QUEUE)]

/** The labels of `queue`: its own name for the first `MAX_QUEUE_LABELS` queues seen, `_other` after. */
export const queueLabels = (queue: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  const known = labels.get(queue)
  if (known !== undefined) return known
  if (labels.size >= MAX_QUEUE_LABELS) return other
  const made = [MetricLabel.make("queue", queue)]
  labels.set(queue, made)
  return made
}

const held = (status: JobStatus | null) => status === "claimed" || status === "running"
const waiting = (status: JobStatus | null) => status === "pending" || status === "scheduled"

/** The counter a change from `from` (null: a new job) to `to` counts in, if any. */
const counterOf = (from: JobStatus | null, to: JobStatus) => {
  if (from === null) return enqueued
  switch (to) {
    case "completed":
      return completed
    case "failed":
      return failed
    case "canceled":
      return canceled
    case "deleted":
      return deleted
    case "claimed":
    case "running":
      return waiting(from) ? started : undefined
    default:
      return held(from) ? retried : undefined
  }
}

/** Seconds between two instants, when both are known (and 0 rather than a negative skew of two clocks). */
export const secondsBetween = (from: Date | string | null | undefined, to: Date | string | null | undefined) => {
  if (from === null || from === undefined || to === null || to === undefined) return undefined
  const ms = new Date(to).getTime() - new Date(from).getTime()
  return Number.isFinite(ms) ? Math.max(0, ms / 1000) : undefined
}

/**
 * Counts one change of a job of `queue` from `from` (null: its creation) to `to`, with the attempt's wait (for a
 * start) or run time (for its end) when known. `count` changes of the same kind at once (a batch) count as one
 * update. Synchronous and cheap: it runs on the paths of enqueue, claim and complete.
 */
export const recordChange = (
  queue: string,
  from: JobStatus | null,
  to: JobStatus,
  seconds?: number | undefined,
  count = 1
) => {
  const metric = counterOf(from, to)
  if (metric === undefined) return
  const tags = queueLabels(queue)
  metric.unsafeUpdate(count, tags)
  if (seconds === undefined) return
  if (metric === started) waitSeconds.unsafeUpdate(seconds, tags)
  else if (held(from)) runSeconds.unsafeUpdate(seconds, tags)
}

/** Counts the jobs an enqueue created (`existing`: an idempotency key's match, not counted), one update per queue. */
export const recordEnqueued = (refs: ReadonlyArray<{ readonly queue: string; readonly existing: boolean }>) => {
  if (refs.length === 1) {
    if (!refs[0]!.existing) recordChange(refs[0]!.queue, null, "pending")
    return
  }
  const byQueue = new Map<string, number>()
  for (const ref of refs) if (!ref.existing) byQueue.set(ref.queue, (byQueue.get(ref.queue) ?? 0) + 1)
  for (const [queue, n] of byQueue) recordChange(queue, null, "pending", undefined, n)
}

/** Counts the attempts a claim began, each with its wait when known. */
export const recordClaimed = (jobs: ReadonlyArray<{ readonly queue: string; readonly waitSeconds?: number | undefined }>) => {
  for (const job of jobs) recordChange(job.queue, "pending", "claimed", job.waitSeconds)
}
