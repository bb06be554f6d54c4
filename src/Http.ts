import {
  HttpApiBuilder,
  HttpApiSwagger,
  HttpApp,
  HttpLayerRouter,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer, NodeHttpServerRequest } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Cause, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { createServer } from "node:http"
import type { EnqueueBody } from "./Api.js"
import { Api, ClaimResult, Health, JobRefs, NotReady, Readiness, WaitResult } from "./Api.js"
import * as Auth from "./Auth.js"
import { CompletionWatcher } from "./CompletionWatcher.js"
import { JobWatchConfig } from "./Config.js"
import { CurrentUser, Forbidden } from "./Domain/Auth.js"
import { InvalidInput, PayloadTooLarge } from "./Domain/Errors.js"
import { JobEvent } from "./Domain/JobEvent.js"
import { isTerminal } from "./Domain/JobStatus.js"
import type { PositionedEvent } from "./EventStream.js"
import { EventStream } from "./EventStream.js"
import type { EnqueueOptions } from "./Jobs.js"
import { Jobs } from "./Jobs.js"
import { Listener } from "./Listener.js"
import { Workers } from "./Workers.js"

/** `/health` and `/ready` (the database answers within 2 s and the LISTEN connection is up). */
export const OpsLive = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const listener = yield* Listener
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
            lastError: Option.getOrNull(state.lastError)
          }
          if (up && state.connected) return Readiness.make({ status: "ready", database: "up", listener: health })
          return yield* new NotReady({
            message: up ? "the LISTEN connection is down" : "the database does not answer",
            database: up ? "up" : "down",
            listener: health
          })
        }))
  }))

/** A number of seconds from a request: finite and at least `min`, else `InvalidInput` naming `field`. */
const seconds = (field: string, value: number | undefined, min = 0) =>
  value === undefined
    ? Effect.succeed(undefined)
    : Number.isFinite(value) && value >= min
    ? Effect.succeed(Duration.millis(Math.round(value * 1000)))
    : Effect.fail(new InvalidInput({ field, message: `must be a number of seconds of at least ${min}, got ${value}` }))

/** The service's names of duration fields, as the HTTP API spells them (in seconds). */
const httpField = (field: string) => field.replace(/(^|\.)(delay|maxDelay|timeout)$/, "$1$2Seconds")

/** An enqueue body (seconds) as the service's options (durations), owned by `owner`. */
const enqueueOptions = (body: EnqueueBody, owner: string, prefix = "") =>
  Effect.gen(function*() {
    const backoff = body.backoff === undefined ? undefined : {
      delay: yield* seconds(`${prefix}backoff.delaySeconds`, body.backoff.delaySeconds),
      maxDelay: yield* seconds(`${prefix}backoff.maxDelaySeconds`, body.backoff.maxDelaySeconds),
      multiplier: body.backoff.multiplier
    }
    return {
      name: body.name,
      queue: body.queue,
      payload: body.payload,
      priority: body.priority,
      runAt: body.runAt,
      delay: yield* seconds(`${prefix}delaySeconds`, body.delaySeconds),
      maxAttempts: body.maxAttempts,
      timeout: yield* seconds(`${prefix}timeoutSeconds`, body.timeoutSeconds, 0.001),
      idempotencyKey: body.idempotencyKey,
      owner,
      backoff
    } satisfies EnqueueOptions
  })

/** `InvalidInput` naming the field as the request spells it. */
const renameFields = (rename: (field: string) => string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) =>
    error instanceof InvalidInput && rename(error.field) !== error.field
      ? new InvalidInput({ field: rename(error.field), message: error.message.replace(error.field, rename(error.field)) })
      : error)

/** `Prefer: wait=N` (RFC 7240): N seconds capped at `max`; absent, malformed or 0: no wait. */
export const preferredWait = (prefer: string | undefined, max: Duration.Duration): number => {
  if (prefer === undefined) return 0
  for (const part of prefer.split(/[,;]/)) {
    const m = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*$/i.exec(part)
    if (m !== null) return Math.min(Number(m[1]), Math.floor(Duration.toSeconds(max)))
  }
  return 0
}

/**
 * Reads a job with `read`; with a wait of N seconds, answers when it is terminal (or, with `afterVersion`, when its
 * version passed it), or when N seconds passed, with `Preference-Applied`. The wait holds no database connection:
 * the `CompletionWatcher` wakes it.
 */
const longPoll = <A extends { readonly version: number; readonly terminal: boolean }, E, R>(
  id: string,
  read: Effect.Effect<A, E, R>,
  wait: number,
  afterVersion: number | undefined
) =>
  Effect.gen(function*() {
    const watcher = yield* CompletionWatcher
    const first = yield* read
    if (wait <= 0) return first
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "preference-applied", `wait=${wait}`))
    )
    const done = afterVersion === undefined ? first.terminal : first.version > afterVersion || first.terminal
    if (done) return first
    const change = afterVersion === undefined
      ? watcher.waitFor(id).pipe(Effect.asVoid)
      : watcher.changes(id, afterVersion).pipe(Effect.asVoid)
    // the job was found: a failure of the wait (deleted meanwhile) shows in the final read
    yield* change.pipe(Effect.timeoutOption(Duration.seconds(wait)), Effect.ignore)
    return yield* read
  })

const afterVersionOf = (value: number | undefined) =>
  value === undefined || (Number.isInteger(value) && value >= 0)
    ? Effect.succeed(value)
    : Effect.fail(new InvalidInput({ field: "afterVersion", message: `must be a non-negative integer, got ${value}` }))

export const JobsLive = HttpApiBuilder.group(Api, "jobs", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const watcher = yield* CompletionWatcher
    const config = yield* JobWatchConfig
    return handlers
      .handle("enqueue", ({ payload }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const ref = yield* jobs.enqueue(yield* enqueueOptions(payload, user.sub)).pipe(renameFields(httpField))
          return ref.existing ? { ...ref, existing: true as const } : { ...ref, existing: false as const }
        }))
      .handle("enqueueBatch", ({ payload }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          if (!Array.isArray(payload.jobs) || payload.jobs.length === 0 || payload.jobs.length > config.maxBatchSize) {
            return yield* new InvalidInput({ field: "jobs", message: `must hold 1 to ${config.maxBatchSize} jobs` })
          }
          const options = yield* Effect.forEach(payload.jobs, (job, i) => enqueueOptions(job, user.sub, `jobs[${i}].`))
          return JobRefs.make({ jobs: yield* jobs.enqueueBatch(options).pipe(renameFields(httpField)) })
        }))
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const filter = { status: urlParams.status, queue: urlParams.queue, name: urlParams.name, owner: user.ownerScope }
          if (urlParams.cursor !== undefined) {
            return yield* jobs.listByCursor({ ...filter, cursor: urlParams.cursor, limit: urlParams.limit })
          }
          return yield* jobs.list({ ...filter, page: urlParams.page, limit: urlParams.limit })
        }))
      .handle("wait", ({ payload }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const timeout = (yield* seconds("timeoutSeconds", payload.timeoutSeconds)) ?? config.maxWait
          const capped = Duration.min(timeout, config.maxWait)
          const result = yield* watcher.waitMany(payload.ids, { mode: payload.mode, timeout: capped, owner: user.ownerScope })
          return WaitResult.make(result)
        }))
      .handle("get", ({ headers, path, urlParams }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const after = yield* afterVersionOf(urlParams.afterVersion)
          const wait = preferredWait(headers.prefer, config.maxWait)
          return yield* longPoll(path.id, jobs.get(path.id, { owner: user.ownerScope }), wait, after)
        }))
      .handle("status", ({ headers, path, urlParams }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const after = yield* afterVersionOf(urlParams.afterVersion)
          const wait = preferredWait(headers.prefer, config.maxWait)
          return yield* longPoll(path.id, jobs.status(path.id, { owner: user.ownerScope }), wait, after)
        }))
      .handle("cancel", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => jobs.cancel(path.id, { owner: user.ownerScope })))
      .handle("delete", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => jobs.delete(path.id, { owner: user.ownerScope })).pipe(
          // only a worker acting on a job it does not hold gets NotJobHolder; a user never acts as one
          Effect.catchTag("NotJobHolder", Effect.die)
        ))
  }))

/** The worker endpoints need the `worker` role (or `admin`). */
const asWorker = Effect.flatMap(CurrentUser, (user) =>
  user.isWorker
    ? Effect.void
    : Effect.fail(new Forbidden({ message: "this needs the worker role", required: "worker" })))

export const WorkersLive = HttpApiBuilder.group(Api, "workers", (handlers) =>
  Effect.gen(function*() {
    const workers = yield* Workers
    const config = yield* JobWatchConfig
    return handlers
      .handle("claim", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* asWorker
          const wait = yield* seconds("waitSeconds", payload.waitSeconds)
          const jobs = yield* workers.claim(path.workerId, {
            queues: payload.queues,
            names: payload.names,
            limit: payload.limit,
            wait: wait === undefined ? undefined : Duration.min(wait, config.maxWait)
          })
          return ClaimResult.make({ jobs })
        }))
      .handle("heartbeat", ({ path }) => Effect.zipRight(asWorker, workers.heartbeat(path.workerId)))
      .handle("update", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* asWorker
          const scope = { workerId: payload.workerId, message: payload.message }
          switch (payload.status) {
            case "running":
              return yield* workers.start(path.id, scope)
            case "completed":
              return yield* workers.complete(path.id, { ...scope, result: payload.result })
            case "canceled":
              return yield* workers.canceled(path.id, scope)
            case "failed": {
              if (payload.error === undefined) {
                return yield* new InvalidInput({ field: "error", message: "is required when status is failed" })
              }
              return yield* workers.fail(path.id, {
                ...scope,
                code: payload.error.code,
                error: payload.error.message,
                retryable: payload.error.retryable
              }).pipe(renameFields((field) => field === "error" ? "error.message" : field === "code" ? "error.code" : field))
            }
          }
        }))
      .handle("progress", ({ path, payload }) =>
        Effect.zipRight(
          asWorker,
          workers.progress(path.id, {
            percent: payload.percent,
            step: payload.step,
            message: payload.message,
            data: payload.data,
            force: payload.force
          }, { workerId: payload.workerId })
        ))
  }))

/** The SSE event name of a job event. */
const sseEventName = (event: JobEvent) =>
  event.type === "job.progress"
    ? "job:progress"
    : event.type === "job.status.changed" && isTerminal(event.status)
    ? `job:${event.status}`
    : "job:status"

const encodeEvent = Schema.encodeSync(JobEvent)

/**
 * A `text/event-stream` of job events: each an SSE message (`id:` its cursor, `event:`, `data:` the event as JSON),
 * with a comment every `keepAlive` (and one at once, so that clients see the stream open). It ends when `events`
 * ends; a client that goes away interrupts it.
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

export const EventsLive = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function*() {
    const streams = yield* EventStream
    const config = yield* JobWatchConfig
    return handlers
      .handle("jobEvents", ({ headers, path, urlParams }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const events = yield* streams.jobEvents(path.id, {
            owner: user.ownerScope,
            afterVersion: yield* afterVersionOf(urlParams.afterVersion),
            cursor: headers["last-event-id"]
          })
          return sseResponse(events, config.sseKeepAlive)
        }))
      .handle("userEvents", ({ headers, urlParams }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const events = yield* streams.userEvents({ ...urlParams, owner: user.ownerScope }, headers["last-event-id"])
          return sseResponse(events, config.sseKeepAlive)
        }))
  }))

/** Reads a body without a length (chunked) up to `limit` bytes; `undefined` when it is longer (the rest unread). */
const readBounded = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.async<Buffer | undefined, Error>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    const done = (result: Effect.Effect<Buffer | undefined, Error>) => {
      incoming.off("data", onData).off("end", onEnd).off("error", onError)
      resume(result)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) return void chunks.push(chunk)
      // stop reading (not destroy: the 413 must still be written); the answer closes the connection
      incoming.pause()
      done(Effect.succeed(undefined))
    }
    const onEnd = () => done(Effect.succeed(Buffer.concat(chunks)))
    const onError = (error: Error) => done(Effect.fail(error))
    incoming.on("data", onData).on("end", onEnd).on("error", onError)
    return Effect.sync(() => incoming.off("data", onData).off("end", onEnd).off("error", onError))
  })

/** `request` with its body already read as `text` (the original stream is consumed). */
const withBody = (request: HttpServerRequest.HttpServerRequest, text: string): HttpServerRequest.HttpServerRequest =>
  Object.create(request, {
    text: { value: Effect.succeed(text) },
    json: { get: () => Effect.try({ try: () => (text === "" ? null : JSON.parse(text)), catch: (error) => error }) },
    arrayBuffer: { value: Effect.succeed(new TextEncoder().encode(text).buffer) }
  })

/**
 * Request bodies before any route parses them: over `maxBodyBytes` they answer 413 (by their `content-length`, or
 * while a chunked one is read, without reading further), and a JSON body that does not parse answers 400 with a
 * JSON error like any other decode failure.
 */
export const RequestBodies = HttpLayerRouter.middleware(
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const limit = config.maxBodyBytes
    const tooLarge = (size: number) =>
      HttpServerResponse.unsafeJson(new PayloadTooLarge({ field: "body", size, limit }), {
        status: 413,
        headers: { connection: "close" }
      })
    const malformed = (error: unknown) =>
      HttpServerResponse.unsafeJson({
        _tag: "HttpApiDecodeError",
        issues: [],
        message: `the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`
      }, { status: 400 })
    return (app) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (request.method === "GET" || request.method === "HEAD" || request.method === "OPTIONS") return yield* app
        const declared = request.headers["content-length"]
        const length = declared === undefined ? Number.NaN : Number(declared)
        if (Number.isFinite(length) && length > limit) return tooLarge(length)
        let current = request
        if (declared === undefined && request.headers["transfer-encoding"] !== undefined) {
          const body = yield* readBounded(request, limit).pipe(Effect.orElseSucceed(() => Buffer.alloc(0)))
          if (body === undefined) return tooLarge(limit + 1)
          current = withBody(request, body.toString("utf8"))
        }
        const run = current === request ? app : Effect.provideService(app, HttpServerRequest.HttpServerRequest, current)
        const answered: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, unknown> = run
        // a body that does not parse fails the route (after authentication) and would answer an empty 400: say why
        return yield* answered.pipe(
          Effect.catchAllCause((cause) => {
            // the platform raises it as a defect of the route, not a failure
            const e = Cause.squash(cause) as { readonly _tag?: unknown; readonly reason?: unknown } | undefined
            if (e?._tag !== "RequestError" || e.reason !== "Decode") return Effect.failCause(cause)
            return Effect.map(current.text.pipe(Effect.orElseSucceed(() => "")), (text) => {
              try {
                JSON.parse(text)
              } catch (parseError) {
                return malformed(parseError)
              }
              return malformed("the body could not be read")
            })
          })
        ) as typeof app
      })
  }),
  { global: true }
)

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
 * The API's routes, to mount on a host's `HttpLayerRouter`: they need an `Authentication` layer (the host's own,
 * or `Auth.layerJwt`) and the jobwatch services.
 */
export const HttpRoutes = HttpLayerRouter.addHttpApi(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([OpsLive, JobsLive, WorkersLive, EventsLive])
)

/** Every route of the service: the API, `/docs` (Swagger UI, offline), the body limit and CORS. */
export const RoutesLive = Layer.mergeAll(
  HttpRoutes,
  HttpApiSwagger.layerHttpLayerRouter({ api: Api, path: "/docs" }),
  RequestBodies,
  CorsLive
)

/** The Node HTTP server on the configured host and port. */
export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(JobWatchConfig, (config) => NodeHttpServer.layer(createServer, { port: config.port, host: config.host }))
)

/** The service: routes with JWT authentication, served on the configured host and port. */
export const ServerLive = HttpLayerRouter.serve(RoutesLive).pipe(
  Layer.provide(Auth.layerJwt),
  Layer.provide(NodeServerLive)
)
