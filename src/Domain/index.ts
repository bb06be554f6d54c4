/**
 * jobwatch's domain, safe in a browser: the schemas of jobs, their events, statuses, workers, webhooks and
 * requests, the ids, and the typed errors. The `jobwatch/domain` entry point.
 */
export * from "./Auth.js"
export * from "./Errors.js"
export * from "./Job.js"
export * from "./JobEvent.js"
export * from "./JobId.js"
/** Job types and rooms: names, bodies, the registry's answers and errors. */
export * from "./JobLib.js"
export * from "./JobStatus.js"
/** The request bodies and parameters of the HTTP API and the RPC group. */
export * as Requests from "./Requests.js"
/** W3C trace context: `traceparent` and `tracestate` validation, a span's `traceparent`, link targets. */
export * from "./TraceContext.js"
export * from "./Webhook.js"
export * from "./Worker.js"
