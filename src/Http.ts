import { HttpApiSwagger, HttpLayerRouter } from "@effect/platform"
import { Effect, Layer } from "effect"
import { Api } from "./Api.js"
import { JobWatchConfig } from "./Config.js"
import { DashboardRoutes } from "./Dashboard.js"
import { OpsLive } from "./Health/Http.js"
import { ServiceGuards } from "./Http/guards.js"
import { IndexRoute } from "./Http/Index.js"
import { Limits, RateLimitLive } from "./Http/Limits.js"
import { RequestBodies } from "./Http/RequestBodies.js"
import { RpcRoutes } from "./Http/RpcHandlers.js"
import { Waits } from "./Http/Waits.js"
import { JobLibLive } from "./JobLib/Http.js"
import { JobsLive } from "./Jobs/Http.js"
import { MetricsRoute } from "./Metrics/Http.js"
import { EventsLive } from "./Streams/Http.js"
import { WebhooksLive } from "./Webhooks/Http.js"
import { WorkerRoleLive, WorkersLive } from "./Workers/Http.js"

export { IndexRoute, indexLinks } from "./Http/Index.js"
export { RequestBodies } from "./Http/RequestBodies.js"
export { sseResponse } from "./Streams/Http.js"

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
  Layer.provide([OpsLive, JobsLive, WorkersLive, EventsLive, WebhooksLive, JobLibLive]),
  Layer.provide([WorkerRoleLive, RateLimitLive]),
  Layer.provide([Waits.Default, Limits.Default])
)

/**
 * Every route of the service: `GET /`, the API, the RPC group, `/docs` (Swagger UI, offline), `/metrics`
 * (Prometheus), the live dashboard (`/dashboard`), the body limit, CORS, and the 503 of a database that does not
 * answer.
 */
export const RoutesLive = Layer.mergeAll(
  IndexRoute,
  HttpRoutes,
  DashboardRoutes,
  RpcRoutes,
  HttpApiSwagger.layerHttpLayerRouter({ api: Api, path: "/docs" }),
  MetricsRoute,
  RequestBodies,
  CorsLive,
  ServiceGuards
)

/**
 * The router's settings for serving `RoutesLive`: a path parameter may have up to 1,000 characters (find-my-way's
 * default is 100), so that every worker id the service accepts (200 characters, percent-encoded) reaches it.
 */
export const routerConfig = { maxParamLength: 1000 } as const
