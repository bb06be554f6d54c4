import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option } from "effect"
import { JobWatchConfig } from "./Config.js"
import * as EmbeddedPostgres from "./Database/EmbeddedPostgres.js"

/**
 * How long a query waits for a connection (a new one, or a free one of a full pool) before it fails: without a
 * bound, a database that stops answering holds every request forever; with it, they answer 503.
 */
const connectTimeout = Duration.seconds(10)

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
    return PgClient.layer({ url, maxConnections: config.poolSize, applicationName: "jobwatch", connectTimeout })
  }).pipe(Effect.annotateLogs("module", "Database"))
)
