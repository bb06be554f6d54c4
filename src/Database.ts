import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import { JobWatchConfig } from "./Config.js"
import * as EmbeddedPostgres from "./EmbeddedPostgres.js"

/**
 * The `PgClient` (and `SqlClient`) for the configured `DATABASE_URL`, or, when there is none, for an embedded
 * PostgreSQL started in `dataDir` for the lifetime of the layer.
 */
export const layer = Layer.unwrapScoped(
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const url = yield* Option.match(config.databaseUrl, {
      onSome: Effect.succeed,
      onNone: () =>
        EmbeddedPostgres.start({ dataDir: config.dataDir, persistent: true }).pipe(
          Effect.tap((cluster) =>
            Effect.logInfo(`embedded PostgreSQL on 127.0.0.1:${cluster.port}, data in ${cluster.clusterDir}`)
          ),
          Effect.map((cluster) => cluster.url)
        )
    })
    return PgClient.layer({ url, maxConnections: config.poolSize, applicationName: "jobwatch" })
  })
)
