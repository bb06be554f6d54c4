import type { MetricData } from "@opentelemetry/sdk-metrics"
import { Duration, Effect, Metric, Option, Scope } from "effect"
import { AmqpRelay } from "./Amqp/Relay.js"
import { relayLagName } from "./Amqp/Relay.js"
import {
  databaseFamilies, disabledEndpoints, liveWorkers, oldestDelivery, oldestPending, pendingDeliveries, queueDepth,
  queueFamilies, runningJobs
} from "./Metrics/families.js"
import type { GaugeSample } from "./Metrics/GaugesRepo.js"
import { GaugesRepo } from "./Metrics/GaugesRepo.js"
import { PoolStats, processSampler, samplePool } from "./Metrics/samplers.js"
import { Reaper } from "./Workers/Reaper.js"

export { PoolStats } from "./Metrics/samplers.js"

/** A database sample this recent is reported again rather than read again (scrapers asking at once). */
const SAMPLE_TTL_MS = 1000
const SAMPLE_TIMEOUT = Duration.seconds(2)

const tagged = (metric: Metric.Metric.Gauge<number>, tags: Record<string, string>) =>
  Object.entries(tags).reduce((m, [key, value]) => Metric.tagged(m, key, value), metric)

/** Sets the database gauges from `sample`. */
const setGauges = (sample: GaugeSample) =>
  Effect.gen(function*() {
    for (const q of sample.queues) {
      yield* Metric.set(tagged(queueDepth, { queue: q.queue, status: "pending" }), q.pending)
      yield* Metric.set(tagged(queueDepth, { queue: q.queue, status: "scheduled" }), q.scheduled)
      yield* Metric.set(tagged(runningJobs, { queue: q.queue }), q.running)
      yield* Metric.set(tagged(oldestPending, { queue: q.queue }), Math.max(0, q.oldest ?? 0))
    }
    yield* Metric.set(liveWorkers, sample.workers)
    yield* Metric.set(pendingDeliveries, sample.deliveries)
    yield* Metric.set(oldestDelivery, Math.max(0, sample.oldestDelivery ?? 0))
    yield* Metric.set(disabledEndpoints, sample.disabled)
  })

/**
 * The metrics of this process in the Prometheus text format (`scrape`), from Effect's metric registry through
 * `@effect/opentelemetry` and the OpenTelemetry Prometheus exporter, loaded on the first scrape (no server of its
 * own: the `/metrics` route, `MetricsRoute`, asks). Each scrape first samples the process (memory, CPU, event loop delay) and the pool
 * (`PoolStats`, when provided). The gauges read from the database (queue depths, oldest pending age, running jobs,
 * live workers, pending webhook deliveries and their oldest's age, disabled endpoints) are reported by the process
 * that is the cluster's reaper alone (one statement, at most once a second), so that a sum over the processes is the
 * cluster's figure; any other process (no `Reaper`, or one that is not the leader) leaves them out, as it leaves out
 * the event bus relay's lag unless it is the relay.
 */
export class Metrics extends Effect.Service<Metrics>()("jobwatch/Metrics", {
  dependencies: [GaugesRepo.Default],
  scoped: Effect.gen(function*() {
    const gauges = yield* GaugesRepo
    const reaper = yield* Effect.serviceOption(Reaper)
    const relay = yield* Effect.serviceOption(AmqpRelay)
    const pool = yield* Effect.serviceOption(PoolStats)
    const processes = yield* processSampler
    /** The queues of the last database sample, and when it was read; none: the database gauges are left out. */
    let current: { readonly at: number; readonly queues: ReadonlySet<string> } | undefined
    let relayLeader = false

    const filter = (metric: MetricData): MetricData | undefined => {
      const name = metric.descriptor.name
      if (name === relayLagName) return relayLeader ? metric : undefined
      if (!databaseFamilies.has(name)) return metric
      if (current === undefined) return undefined
      if (!queueFamilies.has(name)) return metric
      const queues = current.queues
      const dataPoints = metric.dataPoints.filter((point) => queues.has(String(point.attributes["queue"])))
      return dataPoints.length === 0 ? undefined : { ...metric, dataPoints } as MetricData
    }
    // loaded on the first scrape, into the service's scope: a process that is never scraped loads nothing of
    // OpenTelemetry (Effect's registry records the metrics meanwhile)
    const scope = yield* Effect.scope
    const exporter = yield* Effect.cached(
      Effect.promise(() => import("./Metrics/exporter.js")).pipe(
        Effect.flatMap(({ makeExporter }) => makeExporter(filter)),
        Scope.extend(scope)
      )
    )
    const lock = yield* Effect.makeSemaphore(1)

    const refreshDatabase = lock.withPermits(1)(Effect.gen(function*() {
      const leader = Option.isSome(reaper) && (yield* reaper.value.state).leader
      if (!leader) {
        current = undefined
        return
      }
      if (current !== undefined && Date.now() - current.at < SAMPLE_TTL_MS) return
      const sample = yield* gauges.sample.pipe(
        Effect.timeout(SAMPLE_TIMEOUT),
        Effect.tapErrorCause((cause) => Effect.logDebug("the database gauges could not be read", cause)),
        Effect.option
      )
      if (Option.isNone(sample)) {
        current = undefined
        return
      }
      yield* setGauges(sample.value)
      current = { at: Date.now(), queues: new Set(sample.value.queues.map((q) => q.queue)) }
    })).pipe(Effect.annotateLogs("module", "Metrics"))

    const scrape = Effect.gen(function*() {
      yield* processes.sample
      if (Option.isSome(pool)) yield* samplePool(pool.value)
      relayLeader = Option.isSome(relay) && (yield* relay.value.stats).leader
      yield* refreshDatabase
      return yield* (yield* exporter).scrape
    }).pipe(Effect.withSpan("Metrics.scrape"))

    return {
      /** This process's metrics in the Prometheus text format (version 0.0.4). */
      scrape
    } as const
  })
}) {}

/** The content type of `Metrics.scrape`'s text. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"
