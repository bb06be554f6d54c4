import {
  HttpApiBuilder,
  HttpApiSwagger,
  HttpApp,
  HttpLayerRouter,
  HttpRouter,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import { Api, Authentication, ClaimResult, Health, JobRefs, NotReady, Readiness, WaitResult, WorkerRole } from "./Api.js"
import { checkWorker, CurrentUser, Forbidden } from "./Domain/Auth.js"
import * as Auth from "./Auth.js"
import { JobWatchConfig } from "./Config.js"
import { JobEvent, sseEventName } from "./Domain/JobEvent.js"
import type { PositionedEvent } from "./Streams/EventStream.js"
import { ServiceGuards } from "./Http/guards.js"
import { Limits, RateLimitLive } from "./Http/Limits.js"
import { Listener } from "./EventLog/Listener.js"
import { Operations } from "./Operations.js"
import { RequestBodies } from "./Http/RequestBodies.js"
import { RpcRoutes } from "./Http/RpcHandlers.js"
import { version } from "./version.js"

export { RequestBodies } from "./Http/RequestBodies.js"

/**
 * `/health` and `/ready` (the database answers within 2 s and the LISTEN connection is up). `/ready` names the
 * dependency that is down; the listener's last error (the database's own words: host, user) only to an admin.
 */
export const OpsLive = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const listener = yield* Listener
    const authentication = yield* Authentication
    const callerIsAdmin = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const token = Auth.bearerOf(request.headers["authorization"])
      if (token === "") return false
      return yield* authentication.bearer(Redacted.make(token)).pipe(
        Effect.map((user) => user.isAdmin),
        Effect.orElseSucceed(() => false)
      )
    })
    const databaseUp = sql`SELECT 1`.pipe(
      Effect.timeout(Duration.seconds(2)),
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    return handlers
      .handle("health", () => Effect.succeed(Health.make({ status: "ok" })))
      .handle("ready", () =>
        Effect.gen(function*() {
          const [up, state] = yield* Effect.all([databaseUp, listener.currentState], { concurrency: 2 })
          const health = {
            connected: state.connected,
            since: state.since.toISOString(),
            reconnects: state.reconnects,
            lastError: Option.isSome(state.lastError) && (yield* callerIsAdmin) ? state.lastError.value : null
          }
          if (up && state.connected) return Readiness.make({ status: "ready", database: "up", listener: health })
          return yield* new NotReady({
            message: up ? "the LISTEN connection is down" : "the database does not answer",
            database: up ? "up" : "down",
            listener: health
          })
        }))
  }))

/** `Prefer: wait=N` (RFC 7240): N seconds; absent, malformed or 0: no wait. */
export const preferredWait = (prefer: string | undefined): number => {
  if (prefer === undefined) return 0
  for (const part of prefer.split(/[,;]/)) {
    const m = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*$/i.exec(part)
    if (m !== null) return Number(m[1])
  }
  return 0
}

/**
 * Reads a job (`read`) waiting as the `Prefer` header asks (capped), and announces the wait it applied in
 * `Preference-Applied` when it answers the job.
 */
const withPreferredWait = <A, E, R>(prefer: string | undefined, maxSeconds: number, read: (wait: number) => Effect.Effect<A, E, R>) => {
  const wait = Math.min(preferredWait(prefer), maxSeconds)
  return wait === 0 ? read(0) : read(wait).pipe(
    Effect.tap(() =>
      HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "preference-applied", `wait=${wait}`))
      )
    )
  )
}

/**
 * One of the caller's open stream or waiting request slots, held until the response has been sent (the request's
 * scope); 429 `TooManyRequests` when they are all taken.
 */
const holdSlot = (limits: Limits) => Effect.flatMap(CurrentUser, (user) => limits.hold(user))

export const JobsLive = HttpApiBuilder.group(Api, "jobs", (handlers) =>
  Effect.gen(function*() {
    const ops = yield* Operations
    const slot = holdSlot(yield* Limits)
    const slotFor = (wait: number) => (wait > 0 ? slot : Effect.void)
    return handlers
      .handle("enqueue", ({ payload }) =>
        Effect.map(ops.enqueue(payload), (ref) =>
          ref.existing ? { ...ref, existing: true as const } : { ...ref, existing: false as const }))
      .handle("enqueueBatch", ({ payload }) => Effect.map(ops.enqueueBatch(payload.jobs), (jobs) => JobRefs.make({ jobs })))
      .handle("list", ({ urlParams }) => ops.list(urlParams))
      .handle("wait", ({ payload }) =>
        Effect.zipRight(
          slotFor(payload.timeoutSeconds ?? ops.maxWaitSeconds),
          Effect.map(ops.waitMany(payload.ids, payload.mode, payload.timeoutSeconds), (result) => WaitResult.make(result))
        ))
      .handle("get", ({ headers, path, urlParams }) =>
        withPreferredWait(headers.prefer, ops.maxWaitSeconds, (wait) =>
          Effect.zipRight(slotFor(wait), ops.get(path.id, { wait, afterVersion: urlParams.afterVersion }))))
      .handle("status", ({ headers, path, urlParams }) =>
        withPreferredWait(headers.prefer, ops.maxWaitSeconds, (wait) =>
          Effect.zipRight(slotFor(wait), ops.status(path.id, { wait, afterVersion: urlParams.afterVersion }))))
      .handle("cancel", ({ path }) => ops.cancel(path.id))
      .handle("delete", ({ path }) => ops.remove(path.id))
      .handle("purge", ({ payload }) => ops.purge(payload))
  }))

export const WorkersLive = HttpApiBuilder.group(Api, "workers", (handlers) =>
  Effect.gen(function*() {
    const ops = yield* Operations
    return handlers
      .handle("claim", ({ path, payload }) => Effect.map(ops.claim(path.workerId, payload), (jobs) => ClaimResult.make({ jobs })))
      .handle("release", ({ path, payload }) => ops.release(path.workerId, payload.ids))
      .handle("heartbeat", ({ path }) => ops.heartbeat(path.workerId))
      .handle("update", ({ path, payload }) => ops.update(path.id, payload))
      .handle("progress", ({ path, payload }) => ops.progress(path.id, payload))
  }))

const encodeEvent = Schema.encodeSync(JobEvent)

/**
 * A `text/event-stream` of job events: each an SSE message (`id:` its cursor, `event:` its envelope type, `data:`
 * the envelope as JSON), with a comment every `keepAlive` (and one at once, so that clients see the stream open). It
 * ends when `events` ends; a client that goes away interrupts it.
 */
export const sseResponse = (events: Stream.Stream<PositionedEvent>, keepAlive: Duration.Duration) => {
  const messages = events.pipe(
    Stream.map(({ cursor, event }) =>
      `id: ${cursor}\nevent: ${sseEventName(event)}\ndata: ${JSON.stringify(encodeEvent(event))}\n\n`
    )
  )
  const comments = Stream.tick(keepAlive).pipe(Stream.map(() => ": keep-alive\n\n"))
  return HttpServerResponse.stream(
    // a dropped client reconnects after a second, with Last-Event-ID
    Stream.concat(Stream.make("retry: 1000\n\n"), Stream.merge(messages, comments, { haltStrategy: "left" })).pipe(
      Stream.encodeText
    ),
    {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    }
  )
}

export const WebhooksLive = HttpApiBuilder.group(Api, "webhooks", (handlers) =>
  Effect.gen(function*() {
    const ops = yield* Operations
    return handlers
      .handle("list", () => ops.webhooks.list)
      .handle("create", ({ payload }) => ops.webhooks.create(payload))
      .handle("get", ({ path }) => ops.webhooks.get(path.id))
      .handle("update", ({ path, payload }) => ops.webhooks.update(path.id, payload))
      .handle("delete", ({ path }) => ops.webhooks.remove(path.id))
      .handle("rotateSecret", ({ path }) => ops.webhooks.rotateSecret(path.id))
      .handle("deliveries", ({ path, urlParams }) => ops.webhooks.deliveries(path.id, urlParams.page, urlParams.limit))
  }))

export const EventsLive = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function*() {
    const ops = yield* Operations
    const config = yield* JobWatchConfig
    const slot = holdSlot(yield* Limits)
    return handlers
      .handle("jobEvents", ({ headers, path, urlParams }) =>
        Effect.zipRight(
          slot,
          Effect.map(
            ops.jobEvents(path.id, { afterVersion: urlParams.afterVersion, cursor: headers["last-event-id"] }),
            (events) => sseResponse(events, config.sseKeepAlive)
          )
        ))
      .handle("userEvents", ({ headers, urlParams }) =>
        Effect.zipRight(
          slot,
          Effect.map(ops.userEvents(urlParams, headers["last-event-id"]), (events) => sseResponse(events, config.sseKeepAlive))
        ))
  }))

/** CORS for `corsOrigins` (none by default: no CORS headers at all). */
export const CorsLive = Layer.unwrapEffect(Effect.map(JobWatchConfig, (config) =>
  config.corsOrigins.length === 0
    ? Layer.empty
    : HttpLayerRouter.cors({
      allowedOrigins: config.corsOrigins.includes("*") ? () => true : config.corsOrigins,
      allowedHeaders: ["authorization", "content-type", "prefer", "last-event-id"],
      exposedHeaders: ["preference-applied"],
      maxAge: 600
    })))

/**
 * The worker-role check: the `CurrentUser` that `Authentication` provided must be a worker (or an admin) and, on
 * `/v1/workers/{workerId}/…`, may act as that worker id: refused before the body is read, whatever it holds. The
 * ids in bodies (`PATCH /v1/jobs/{id}`, progress) are checked by `Operations`, by the same rule.
 */
export const WorkerRoleLive = Layer.succeed(
  WorkerRole,
  Effect.gen(function*() {
    const user = yield* Effect.serviceOption(CurrentUser)
    if (Option.isNone(user)) return yield* new Forbidden({ message: "this needs the worker role", required: "worker" })
    const route = yield* Effect.serviceOption(HttpRouter.RouteContext)
    const workerId = Option.isSome(route) ? route.value.params["workerId"] : undefined
    return yield* checkWorker(user.value, workerId)
  })
)

/**
 * The API's routes, to mount on a host's `HttpLayerRouter`: they need an `Authentication` layer (the host's own,
 * or `Auth.layerJwt`) and the jobwatch services.
 */
export const HttpRoutes = HttpLayerRouter.addHttpApi(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([OpsLive, JobsLive, WorkersLive, EventsLive, WebhooksLive]),
  Layer.provide([WorkerRoleLive, RateLimitLive]),
  Layer.provide([Operations.Default, Limits.Default])
)

/** What `GET /` points to: the docs, the spec and the health checks. */
export const indexLinks = {
  name: "jobwatch",
  version,
  docs: "/docs",
  openapi: "/openapi.json",
  health: "/health",
  ready: "/ready"
} as const

const indexPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobwatch ${version}</title></head>
<body><h1>jobwatch ${version}</h1>
<p>Job tracking and notifications on PostgreSQL.</p>
<ul><li><a href="/docs">API documentation (Swagger UI)</a></li><li><a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/health">/health</a> and <a href="/ready">/ready</a></li></ul>
</body></html>
`

/** `GET /`: a small page for browsers (`Accept: text/html`), the same links as JSON for anyone else. */
export const IndexRoute = HttpLayerRouter.add("GET", "/", (request) => {
  const accept = request.headers["accept"] ?? ""
  const headers = { vary: "Accept" }
  return Effect.succeed(
    accept.includes("text/html")
      ? HttpServerResponse.html(indexPage).pipe(HttpServerResponse.setHeaders(headers))
      : HttpServerResponse.unsafeJson(indexLinks, { headers })
  )
})

/**
 * Every route of the service: `GET /`, the API, the RPC group, `/docs` (Swagger UI, offline), the body limit, CORS,
 * and the 503 of a database that does not answer.
 */
export const RoutesLive = Layer.mergeAll(
  IndexRoute,
  HttpRoutes,
  RpcRoutes,
  HttpApiSwagger.layerHttpLayerRouter({ api: Api, path: "/docs" }),
  RequestBodies,
  CorsLive,
  ServiceGuards
)

/**
 * The router's settings for serving `RoutesLive`: a path parameter may have up to 1,000 characters (find-my-way's
 * default is 100), so that every worker id the service accepts (200 characters, percent-encoded) reaches it.
 */
export const routerConfig = { maxParamLength: 1000 } as const
