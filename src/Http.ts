import { HttpApiBuilder, HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Api, Health, NotReady, Readiness } from "./Api.js"
import { JobWatchConfig } from "./Config.js"

/** `/health` and `/ready` (the database answers within 2 s). */
export const OpsLive = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const databaseUp = sql`SELECT 1`.pipe(
      Effect.timeout(Duration.seconds(2)),
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    return handlers
      .handle("health", () => Effect.succeed(Health.make({ status: "ok" })))
      .handle("ready", () =>
        Effect.flatMap(databaseUp, (up) =>
          up
            ? Effect.succeed(Readiness.make({ status: "ready", database: "up" }))
            : Effect.fail(new NotReady({ message: "the database does not answer", database: "down" }))))
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
