import { Config, ConfigError, Duration, Effect, Either, Layer, Option } from "effect"
import { Propagation } from "./Domain/TraceContext.js"
import type { OtlpOptions } from "./Traces/Otlp.js"

export type { OtlpOptions } from "./Traces/Otlp.js"

// Traces: Effect's spans (every `Effect.fn`, the HTTP server's requests, SQL statements, `Worker.run`'s jobs)
// exported over OTLP/HTTP when configured; nothing of OpenTelemetry is loaded otherwise.

/**
 * Whether this process exports its spans (`Domain/TraceContext.ts`): `Jobs.enqueue` then stores its own span's trace
 * context with each job given none, and `Worker.run` runs each job in a `Worker.process` span. Off by default.
 */
export { Propagation }

/** Turns `Propagation` on: for a host that exports Effect's spans with an OpenTelemetry setup of its own. */
export const propagation: Layer.Layer<Propagation> = Layer.succeed(Propagation, true)

/**
 * Effect's tracer on the OpenTelemetry SDK, exporting over OTLP/HTTP to `options.url` (see `OtlpOptions`), with
 * `Propagation` on. Provide it below everything else (`Layer.provide(app, Traces.layer(...))`): layers built before it
 * keep Effect's own tracer. The SDK is loaded when the layer is built, not before.
 */
export const layer = (options: OtlpOptions): Layer.Layer<Propagation> =>
  Layer.merge(
    Layer.unwrapEffect(Effect.map(Effect.promise(() => import("./Traces/Otlp.js")), (otlp) => otlp.layer(options))),
    propagation
  )

/** An http(s) URL, or the `ConfigError` naming `name`. */
const httpUrl = (name: string) => (value: string): Either.Either<string, ConfigError.ConfigError> => {
  try {
    const url = new URL(value)
    if (url.protocol === "http:" || url.protocol === "https:") return Either.right(value)
  } catch {
    // below
  }
  return Either.left(ConfigError.InvalidData([name], `must be an http:// or https:// URL`))
}

/** An optional variable: unset or empty is none. */
const optional = (name: string) =>
  Config.string(name).pipe(Config.withDefault(""), Config.map((value) => value.trim()))

/**
 * The traces endpoint of the environment, by the OpenTelemetry variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it
 * is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/traces` appended; none when both are unset or empty.
 */
export const endpointConfig: Config.Config<Option.Option<string>> = Config.all({
  traces: optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
  base: optional("OTEL_EXPORTER_OTLP_ENDPOINT")
}).pipe(Config.mapOrFail(({ base, traces }) => {
  if (traces !== "") return Either.map(httpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")(traces), Option.some)
  if (base === "") return Either.right(Option.none())
  return Either.map(
    httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT")(base),
    (url) => Option.some(`${url}${url.endsWith("/") ? "" : "/"}v1/traces`)
  )
}))

/**
 * `layer` as the environment says: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set,
 * spans go there as `OTEL_SERVICE_NAME` (default `jobwatch`); unset, it is `Layer.empty`: no SDK loaded, no layer
 * built, Effect's own tracer. The OTLP exporter reads its other variables itself (`OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_EXPORTER_OTLP_TIMEOUT`), and so does the batch processor (`OTEL_BSP_*`).
 */
export const layerConfig = (
  options: { readonly shutdownTimeout?: Duration.DurationInput | undefined } = {}
): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const endpoint = yield* endpointConfig
    if (Option.isNone(endpoint)) return Layer.empty
    const serviceName = yield* optional("OTEL_SERVICE_NAME")
    return layer({
      url: endpoint.value,
      serviceName: serviceName === "" ? "jobwatch" : serviceName,
      shutdownTimeout: options.shutdownTimeout
    })
  }))
