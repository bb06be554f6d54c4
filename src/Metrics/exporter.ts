import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricData, MetricProducer } from "@opentelemetry/sdk-metrics"
import { Effect } from "effect"
import { version } from "../version.js"

/** Which data points a scrape keeps: `keep(metric)` answers the metric as it is, a part of it, or none. */
export type Filter = (metric: MetricData) => MetricData | undefined

/** `# UNIT name 1` (the unit of every Effect metric, dimensionless): OpenMetrics' syntax, noise in the text format. */
const dimensionless = /^# UNIT \S+ 1\n/gm

/**
 * Effect's metrics (the process-wide registry, through `@effect/opentelemetry`'s producer) read by an OpenTelemetry
 * Prometheus exporter that starts no server of its own: `scrape` collects and serializes on request, in the
 * Prometheus text format, each metric passed through `filter` first. The exporter is shut down with the scope.
 */
export const makeExporter = (filter: Filter) =>
  Effect.gen(function*() {
    const inner = yield* OtelMetrics.makeProducer.pipe(
      Effect.provide(Resource.layer({ serviceName: "jobwatch", serviceVersion: version }))
    )
    const producer: MetricProducer = {
      collect: (options) =>
        inner.collect(options).then((result) => ({
          ...result,
          resourceMetrics: {
            ...result.resourceMetrics,
            scopeMetrics: result.resourceMetrics.scopeMetrics.map((scope) => ({
              ...scope,
              metrics: scope.metrics.flatMap((metric) => filter(metric) ?? [])
            }))
          }
        }))
    }
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true })
    yield* OtelMetrics.registerProducer(producer, () => exporter)
    const serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
    const scrape = Effect.promise(() => exporter.collect()).pipe(
      Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics).replace(dimensionless, ""))
    )
    return { scrape } as const
  })
