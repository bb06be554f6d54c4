import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type { Resource } from "@effect/opentelemetry/Resource"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Duration, Effect, FiberSet, Layer } from "effect"
import { makeStreak } from "../internal/retry.js"
import { version } from "../version.js"

// The OpenTelemetry SDK behind `Traces.layer`: loaded only by its dynamic import, so that a process that exports no
// traces never loads it.

export interface OtlpOptions {
  /** The OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`. */
  readonly url: string
  /** The resource's `service.name`; default `jobwatch`. `OTEL_RESOURCE_ATTRIBUTES` adds attributes. */
  readonly serviceName?: string | undefined
  /** Headers of every export request (a collector's credentials); default `OTEL_EXPORTER_OTLP_HEADERS`'. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /**
   * How long the release of the layer may take to flush the spans not exported yet (a collector that does not answer
   * is given up on then); default 1 second.
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

type ExportResult = Parameters<Parameters<SpanExporter["export"]>[1]>[0]
/** `ExportResultCode.SUCCESS` of `@opentelemetry/core`. */
const SUCCESS = 0

/** An exporter that tells `report` how each export ended, and otherwise is `inner`. */
class ReportingExporter implements SpanExporter {
  constructor(private readonly inner: SpanExporter, private readonly report: (result: ExportResult) => void) {}
  export(spans: Array<ReadableSpan>, done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.report(result)
      done(result)
    })
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve()
  }
}

/** The endpoint as it may be logged: without credentials, query or fragment. */
const shown = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return "the configured endpoint"
  }
}

/**
 * Effect's tracer on the OpenTelemetry SDK, exporting over OTLP/HTTP (JSON) through a `BatchSpanProcessor`
 * (`OTEL_BSP_*` tune it): a span's end only queues it, exports run in the background, and a full queue drops
 * spans rather than wait. A failing export logs the first failure of a streak (then at most a line an hour, and
 * one when exports succeed again), never one per span. The release flushes what is queued, within `shutdownTimeout`.
 */
export const layer = (options: OtlpOptions): Layer.Layer<Resource> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    // created before the SDK's layer: released after it, so the flush at release may still log
    const run = yield* FiberSet.makeRuntime<never>()
    const streak = yield* makeStreak(`exporting traces to ${shown(options.url)}`, { cap: Duration.hours(1) })
    const report = (result: ExportResult) => {
      if (result.code === SUCCESS) {
        if (streak.failures() > 0) run(streak.succeeded)
      } else {
        run(Effect.asVoid(streak.failed(result.error ?? "the export failed")))
      }
    }
    const exporter = new OTLPTraceExporter({ url: options.url, ...(options.headers === undefined ? {} : { headers: { ...options.headers } }) })
    return NodeSdk.layer(() => ({
      spanProcessor: new BatchSpanProcessor(new ReportingExporter(exporter, report)),
      resource: { serviceName: options.serviceName ?? "jobwatch", serviceVersion: version },
      shutdownTimeout: options.shutdownTimeout ?? Duration.seconds(1)
    }))
  }).pipe(Effect.annotateLogs("module", "Traces")))
