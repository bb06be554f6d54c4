import { Effect, Metric, MetricBoundaries, MetricLabel } from "effect"

// The families of the surfaces (open streams), of the webhook deliverer, and those read from the database by the
// cluster's reaper. The job families are `jobs.ts`'s; the notification path's, the listener's, the reaper's, the
// progress reporter's and the event bus relay's are defined beside what they count.

/** Where a client waits: a long-poll (`Prefer: wait`, the wait endpoints), an SSE stream, an RPC stream or wait, a socket. */
export type Channel = "long_poll" | "sse" | "rpc" | "socket_io"

const openStreams = Metric.counter("jobwatch_open_streams", {
  description: "open event streams and waiting requests here, by channel (long_poll, sse, rpc, socket_io)"
})
const channelLabels: Record<Channel, ReadonlyArray<MetricLabel.MetricLabel>> = {
  long_poll: [MetricLabel.make("channel", "long_poll")],
  sse: [MetricLabel.make("channel", "sse")],
  rpc: [MetricLabel.make("channel", "rpc")],
  socket_io: [MetricLabel.make("channel", "socket_io")]
}

/** Counts one open stream or wait of `channel` until the scope closes. */
export const holdOpen = (channel: Channel) =>
  Effect.acquireRelease(
    Effect.sync(() => openStreams.unsafeUpdate(1, channelLabels[channel])),
    () => Effect.sync(() => openStreams.unsafeUpdate(-1, channelLabels[channel]))
  )

/** An attempt's outcome class: the answer's status class, or why there was none. */
export type AttemptOutcome = "2xx" | "3xx" | "4xx" | "5xx" | "timeout" | "error"

export const webhookAttempts = Metric.counter("jobwatch_webhook_attempts", {
  description: "webhook delivery attempts by outcome (2xx, 3xx, 4xx, 5xx, timeout, error)",
  incremental: true
})
export const webhookLatency = Metric.histogram(
  "jobwatch_webhook_delivery_latency_seconds",
  MetricBoundaries.fromIterable([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600]),
  "from an event to its webhook's successful delivery (retries included)"
)

/** Counts an attempt (status and error as the deliverer recorded them) and, for a success, its latency. */
export const recordAttempt = (status: number | null, timedOut: boolean, latencySeconds: number) =>
  Effect.suspend(() => {
    const outcome: AttemptOutcome = status === null
      ? (timedOut ? "timeout" : "error")
      : status >= 200 && status < 600
      ? `${Math.floor(status / 100)}xx` as AttemptOutcome
      : "error"
    return Effect.zipRight(
      Metric.increment(Metric.tagged(webhookAttempts, "outcome", outcome)),
      outcome === "2xx" ? Metric.update(webhookLatency, latencySeconds) : Effect.void
    )
  })

// read from the database by the reaper's process alone (see `Metrics.ts`): any other process leaves them out
const databaseNames = new Set<string>()
const queueNames = new Set<string>()
/** A gauge read from the database (`byQueue`: labelled by queue, a queue no longer there left out). */
const databaseGauge = (name: string, description: string, byQueue = false) => {
  databaseNames.add(name)
  if (byQueue) queueNames.add(name)
  return Metric.gauge(name, { description: `${description}; reported by the reaper's process` })
}

export const queueDepth = databaseGauge("jobwatch_queue_depth", "jobs waiting in a queue by status (pending, scheduled)", true)
export const oldestPending = databaseGauge(
  "jobwatch_queue_oldest_pending_age_seconds",
  "how long the oldest pending job of a queue has been due",
  true
)
export const runningJobs = databaseGauge("jobwatch_jobs_running", "jobs workers hold (claimed or running) by queue", true)
export const liveWorkers = databaseGauge("jobwatch_workers_live", "workers seen within the worker timeout")
export const pendingDeliveries = databaseGauge("jobwatch_webhook_deliveries_pending", "webhook deliveries not yet made or due again")
export const oldestDelivery = databaseGauge("jobwatch_webhook_oldest_pending_age_seconds", "age of the oldest pending webhook delivery")
export const disabledEndpoints = databaseGauge(
  "jobwatch_webhook_endpoints_disabled",
  "webhook endpoints turned off (by their owner, a 410, or failing too long)"
)

/** The families read from the database: reported by one process of the cluster, the reaper's. */
export const databaseFamilies: ReadonlySet<string> = databaseNames
/** The database families labelled by queue: a queue no longer in the database is left out. */
export const queueFamilies: ReadonlySet<string> = queueNames
