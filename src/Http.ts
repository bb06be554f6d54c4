import { HttpApiBuilder, HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import { Api, Health, NotReady, Readiness } from "./Api.js"
import { JobWatchConfig } from "./Config.js"
import { Listener } from "./Listener.js"

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

/** Every route of the API on one `HttpLayerRouter`. */
export const RoutesLive = HttpLayerRouter.addHttpApi(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(OpsLive)
)

/** The Node HTTP server on the configured host and port. */
export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(JobWatchConfig, (config) => NodeHttpServer.layer(createServer, { port: config.port, host: config.host }))
)

export const ServerLive = HttpLayerRouter.serve(RoutesLive).pipe(Layer.provide(NodeServerLive))
