import { HttpApp, HttpLayerRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { Exit } from "effect"
import { Cause, Effect, Option } from "effect"
import { DatabaseUnavailable } from "../Domain/Errors.js"
import { Shutdown } from "./Shutdown.js"
import { describeError } from "../internal/retry.js"
import { isDatabaseDown } from "../internal/unavailable.js"

/** How long a client should wait before retrying a request the database could not serve. */
const databaseRetryAfter = "5"

const unavailable = HttpServerResponse.unsafeJson(new DatabaseUnavailable(), {
  status: 503,
  headers: { "retry-after": databaseRetryAfter }
})

/**
 * The HTTP server's span (its `url.full` and `url.query`) without the `access_token` a browser's EventSource sends in
 * the query string: a token must not reach a trace any more than a log. Nothing to do for other requests.
 */
const redactAccessToken = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
  if (!request.url.includes("access_token")) return Effect.void
  return Effect.flatMap(Effect.option(Effect.currentSpan), (span) =>
    Effect.sync(() => {
      const url = Option.getOrUndefined(HttpServerRequest.toURL(request))
      if (Option.isNone(span) || url === undefined || !url.searchParams.has("access_token")) return
      url.searchParams.set("access_token", "REDACTED")
      span.value.attribute("url.full", url.toString())
      span.value.attribute("url.query", url.search.slice(1))
    }))
})

/**
 * Global middleware of the routes: a database that does not answer answers 503 `DatabaseUnavailable` with
 * `Retry-After` (the repositories turn `SqlError`s into defects, which would be an empty 500), never the SQL, host
 * or user; while the server drains (`Shutdown`), every response closes its connection; and the request's span
 * shows no `access_token` (`redactAccessToken`).
 */
export const ServiceGuards = HttpLayerRouter.middleware(
  Effect.gen(function*() {
    const shutdown = yield* Effect.serviceOption(Shutdown)
    const closeWhenDraining = Option.match(shutdown, {
      onNone: () => Effect.void,
      onSome: (shutdown) =>
        HttpApp.appendPreResponseHandler((_request, response) =>
          Effect.map(shutdown.isDraining, (draining) =>
            draining ? HttpServerResponse.setHeader(response, "connection", "close") : response)
        )
    })
    return (app) =>
      Effect.zipRight(
        Effect.zipRight(redactAccessToken, closeWhenDraining),
        Effect.catchAllCause(app, (cause) => isDatabaseDown(cause) ? Effect.succeed(unavailable) : Effect.failCause(cause))
      )
  }),
  { global: true }
)

/** A request's path without its query string (which may hold an `access_token`). */
const pathOf = (url: string) => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

/** `/health` and `/ready`, which supervisors and load balancers ask all the time. */
const isProbe = (url: string) => /^\/(health|ready)(?:[?#]|$)/.test(url)

/**
 * The request log, in place of the platform's (which writes the URL with its query string, at info, for every
 * request): at most one line per request, `METHOD /path status duration`, at debug, or at error with the cause's
 * first line for a 5xx (but a probe's 503, `/ready` while a dependency is down). Never a query string, a header or a body.
 */
export const requestLogger = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const started = Date.now()
    const line = (status: number) => `${request.method} ${pathOf(request.url)} ${status} ${Date.now() - started}ms`
    const logged = (exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>) => {
      if (exit._tag === "Success") {
        const status = exit.value.status
        // a probe's 503 is its answer, not a failure of the request: the loops that found the database or the
        // LISTEN connection down log that once, and a load balancer probing every second would flood the log
        return status >= 500 && !isProbe(request.url) ? Effect.logError(line(status)) : Effect.logDebug(line(status))
      }
      const [response, cause] = HttpServerError.causeResponseStripped(exit.cause)
      if (response.status < 500) return Effect.logDebug(line(response.status))
      const reason = Option.isSome(cause) && !Cause.isInterruptedOnly(cause.value) ? `: ${describeError(cause.value)}` : ""
      return Effect.logError(`${line(response.status)}${reason}`)
    }
    return Effect.onExit(app, (exit) => Effect.annotateLogs(logged(exit), "module", "Http"))
  })
