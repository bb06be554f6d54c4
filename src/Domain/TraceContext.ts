import { Context, Option, Schema, Tracer } from "effect"

// A job's trace context (W3C Trace Context, https://www.w3.org/TR/trace-context/): the `traceparent` (and
// `tracestate`) of the span it was created in, stored with the job and handed to the worker that claims it, whose
// span for running the job links to it.

/** `version-traceid-parentid-flags`: 55 characters of lowercase hex; version `ff` is invalid, and so are zero ids. */
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const zeroTraceId = "0".repeat(32)
const zeroSpanId = "0".repeat(16)

/** A list member of a `tracestate` (`key=value`, the key with an optional `@system`). */
const tracestateMember =
  /^[a-z0-9][a-z0-9_\-*/]{0,255}(@[a-z][a-z0-9_\-*/]{0,13})?=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/

/** The longest `tracestate` kept (the propagation limit the W3C recommendation names). */
export const MAX_TRACESTATE_LENGTH = 512

/** Whether `value` is a valid W3C `traceparent`. */
export const isTraceparent = (value: unknown): value is string => {
  if (typeof value !== "string" || value.length !== 55) return false
  const m = traceparentPattern.exec(value)
  return m !== null && m[1] !== "ff" && m[2] !== zeroTraceId && m[3] !== zeroSpanId
}

/** Whether `value` is a valid W3C `tracestate`: at most 32 list members, 512 characters. */
export const isTracestate = (value: unknown): value is string => {
  if (typeof value !== "string" || value.length > MAX_TRACESTATE_LENGTH) return false
  const members = value.split(",").map((member) => member.trim()).filter((member) => member !== "")
  return members.length > 0 && members.length <= 32 && members.every((member) => tracestateMember.test(member))
}

export const Traceparent = Schema.String.pipe(
  Schema.filter(isTraceparent, {
    message: () => "must be a W3C traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, lowercase, ids not all zero",
    jsonSchema: { pattern: traceparentPattern.source, minLength: 55, maxLength: 55 }
  })
).annotations({
  identifier: "Traceparent",
  description: "a W3C traceparent (version-traceid-parentid-flags)",
  examples: ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
})

export const Tracestate = Schema.String.pipe(
  Schema.filter(isTracestate, {
    message: () => `must be a W3C tracestate: comma-separated key=value members, at most 32 and ${MAX_TRACESTATE_LENGTH} characters`,
    jsonSchema: { maxLength: MAX_TRACESTATE_LENGTH }
  })
).annotations({ identifier: "Tracestate", description: "a W3C tracestate (vendor data that goes with the traceparent)" })

/** A trace context: a valid `traceparent`, and the `tracestate` that goes with it, if any. */
export interface TraceContext {
  readonly traceparent: string
  readonly tracestate?: string | undefined
}

/**
 * The trace context of propagation headers (`traceparent`, `tracestate`), as the W3C recommendation reads them: an
 * invalid `traceparent` is ignored (none), and so is an invalid `tracestate` (the `traceparent` alone).
 */
export const traceContextOfHeaders = (
  traceparent: string | undefined,
  tracestate: string | undefined
): Option.Option<TraceContext> => {
  const parent = traceparent?.trim()
  if (!isTraceparent(parent)) return Option.none()
  const state = tracestate?.trim()
  return Option.some(isTracestate(state) ? { traceparent: parent, tracestate: state } : { traceparent: parent })
}

/** The `traceparent` of an Effect span. */
export const traceparentOf = (span: Tracer.AnySpan): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** The span a `traceparent` names, as a link target (or a parent) for Effect spans. */
export const externalSpanOf = (traceparent: string): Option.Option<Tracer.ExternalSpan> =>
  isTraceparent(traceparent)
    ? Option.some(Tracer.externalSpan({
      traceId: traceparent.slice(3, 35),
      spanId: traceparent.slice(36, 52),
      sampled: (Number.parseInt(traceparent.slice(53, 55), 16) & 1) === 1
    }))
    : Option.none()

/**
 * Whether this process exports its spans. `Jobs.enqueue` then stores the trace context of its own span (a producer
 * span, the child of the caller's) with each job it creates that was given none, and `Worker.run` runs each job in a
 * `Worker.process` span linked to the job's context. Off by default: spans are then Effect's in-memory ones, which no
 * one sees, and neither costs anything. `Traces.layer` turns it on; a host exporting Effect's spans with an
 * OpenTelemetry setup of its own adds `Traces.propagation`. `Jobs`, the enqueue routes and `Worker.run` read it when
 * they are built or started: provide it below them.
 */
export class Propagation extends Context.Reference<Propagation>()("jobwatch/Traces/Propagation", {
  defaultValue: () => false
}) {}
