import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { JobWatchConfig } from "./Config.js"
import * as EmbeddedPostgres from "./Database/EmbeddedPostgres.js"
import { PoolStats } from "./Metrics/samplers.js"

/**
 * How long a query waits for a connection (a new one, or a free one of a full pool) before it fails: without a
 * bound, a database that stops answering holds every request forever; with it, they answer 503.
 */
const connectTimeout = Duration.seconds(10)

/**
 * The service's pool (what `PgClient.layer` would make: connected and checked with `SELECT 1` within the connect
 * timeout, ended with the scope), made here so that its gauges can be read (`PoolStats`).
 */
const poolOf = (url: Redacted.Redacted, size: number) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const pool = new pg.Pool({
          connectionString: Redacted.value(url),
          max: size,
          application_name: "jobwatch",
          connectionTimeoutMillis: Duration.toMillis(connectTimeout)
        })
        pool.on("error", () => undefined)
        try {
          await pool.query("SELECT 1")
        } catch (error) {
          await pool.end().catch(() => undefined)
          throw error
        }
        return pool
      },
      catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
    }).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
      })
    ),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
  )

/**
 * The `PgClient` (and `SqlClient`) for the configured `DATABASE_URL`, or, when there is none, for an embedded
 * PostgreSQL started in `dataDir` for the lifetime of the layer; and its pool's `PoolStats`.
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
    const pool = yield* poolOf(url, config.poolSize)
    return Layer.merge(
      PgClient.layerFromPool({ acquire: Effect.succeed(pool), applicationName: "jobwatch" }),
      Layer.succeed(PoolStats, pool)
    )
  }).pipe(Effect.annotateLogs("module", "Database"))
)
