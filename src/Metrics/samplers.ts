import { Context, Effect, Metric, MetricLabel } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"

// What is read at each scrape rather than counted as it happens: the process (memory, CPU, event loop) and the
// connection pool.

/**
 * The service's own connection pool, for its gauges (a `pg.Pool`: `totalCount`, `idleCount`, `waitingCount`).
 * `Database.layer` provides it; a host with a pool of its own may provide it too.
 */
export class PoolStats extends Context.Tag("jobwatch/PoolStats")<PoolStats, {
  readonly totalCount: number
  readonly idleCount: number
  readonly waitingCount: number
}>() {}

const poolConnections = Metric.gauge("jobwatch_db_pool_connections", {
  description: "connections of this process's pool by state (in_use, idle)"
})
const poolWaiting = Metric.gauge("jobwatch_db_pool_waiting", {
  description: "queries of this process waiting for a connection of its pool"
})
const inUse = [MetricLabel.make("state", "in_use")]
const idle = [MetricLabel.make("state", "idle")]

/** Sets the pool gauges from `pool`. */
export const samplePool = (pool: Context.Tag.Service<PoolStats>) =>
  Effect.sync(() => {
    poolConnections.unsafeUpdate(pool.totalCount - pool.idleCount, inUse)
    poolConnections.unsafeUpdate(pool.idleCount, idle)
    poolWaiting.unsafeUpdate(pool.waitingCount, [])
  })

// the names prom-client gives them, so that the usual dashboards find them
const cpu = Metric.counter("process_cpu_seconds", {
  description: "user and system CPU time spent, in seconds",
  incremental: true
})
const rss = Metric.gauge("process_resident_memory_bytes", { description: "resident memory size, in bytes" })
const startTime = Metric.gauge("process_start_time_seconds", { description: "start of the process, in Unix seconds" })
const heapUsed = Metric.gauge("nodejs_heap_size_used_bytes", { description: "V8 heap in use, in bytes" })
const heapTotal = Metric.gauge("nodejs_heap_size_total_bytes", { description: "V8 heap allocated, in bytes" })
const external = Metric.gauge("nodejs_external_memory_bytes", { description: "memory of C++ objects bound to JS" })
const lagMean = Metric.gauge("nodejs_eventloop_lag_mean_seconds", {
  description: "mean event loop delay since the previous scrape"
})
const lagP99 = Metric.gauge("nodejs_eventloop_lag_p99_seconds", {
  description: "99th percentile of the event loop delay since the previous scrape"
})
const lagMax = Metric.gauge("nodejs_eventloop_lag_max_seconds", {
  description: "largest event loop delay since the previous scrape"
})

/**
 * The process sampler: an event loop delay monitor (every 20 ms) until the scope closes, and `sample`, which sets the
 * process gauges (and starts the delay's next window).
 */
export const processSampler = Effect.gen(function*() {
  const delay = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: 20 })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )
  const startedAt = Date.now() / 1000 - process.uptime()
  let lastCpu = process.cpuUsage()
  const sample = Effect.sync(() => {
    const usage = process.cpuUsage()
    cpu.unsafeUpdate((usage.user - lastCpu.user + usage.system - lastCpu.system) / 1e6, [])
    lastCpu = usage
    const memory = process.memoryUsage()
    rss.unsafeUpdate(memory.rss, [])
    heapUsed.unsafeUpdate(memory.heapUsed, [])
    heapTotal.unsafeUpdate(memory.heapTotal, [])
    external.unsafeUpdate(memory.external, [])
    startTime.unsafeUpdate(startedAt, [])
    // nanoseconds; NaN before the first measurement
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0)
    lagMean.unsafeUpdate(seconds(delay.mean), [])
    lagP99.unsafeUpdate(seconds(delay.percentile(99)), [])
    lagMax.unsafeUpdate(seconds(delay.max), [])
    delay.reset()
  })
  return { sample } as const
})
