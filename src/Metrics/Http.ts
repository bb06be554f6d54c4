import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Layer, Redacted } from "effect"
import { Authentication } from "../Auth/Api.js"
import { tokenOfHeader } from "../Auth.js"
import { JobWatchConfig } from "../Config.js"
import { Forbidden } from "../Domain/Auth.js"
import type { Unauthorized } from "../Domain/Auth.js"
import { contentType, Metrics } from "../Metrics.js"

const refusal = (error: Unauthorized | Forbidden) =>
  HttpServerResponse.unsafeJson(error, {
    status: error._tag === "Unauthorized" ? 401 : 403,
    headers: error._tag === "Unauthorized" ? { "www-authenticate": "Bearer" } : {}
  })

/**
 * `GET /metrics`: `Metrics.scrape` in the Prometheus text format, for a token with the `admin` role (401 without a
 * valid token, 403 without the role), or for anyone with `metricsPublic` (`JOBWATCH_METRICS_PUBLIC=true`: a scraper
 * on a private network). Mount it on a host's `HttpLayerRouter` beside the routes; it needs the `Metrics` service,
 * an `Authentication` layer (the host's own, or `Auth.layerJwt`) and the configuration.
 */
export const MetricsRoute = Layer.unwrapEffect(Effect.gen(function*() {
  const metrics = yield* Metrics
  const authentication = yield* Authentication
  const config = yield* JobWatchConfig
  const admitted = Effect.gen(function*() {
    if (config.metricsPublic) return undefined
    const request = yield* HttpServerRequest.HttpServerRequest
    const token = tokenOfHeader(request.headers["authorization"])
    if (Either.isLeft(token)) return refusal(token.left)
    const user = yield* Effect.either(authentication.bearer(Redacted.make(token.right)))
    if (Either.isLeft(user)) return refusal(user.left)
    return user.right.isAdmin
      ? undefined
      : refusal(new Forbidden({ message: "/metrics needs the admin role (or JOBWATCH_METRICS_PUBLIC=true)", required: "admin" }))
  })
  return HttpLayerRouter.add(
    "GET",
    "/metrics",
    Effect.gen(function*() {
      const refused = yield* admitted
      if (refused !== undefined) return refused
      return HttpServerResponse.text(yield* metrics.scrape, { contentType, headers: { "cache-control": "no-store" } })
    })
  )
}))
