import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { inject } from "vitest"
import type { JobWatchConfigInput } from "../../src/Config.js"
import { JobWatchConfig } from "../../src/Config.js"

/** The URL of the suite's database (see globalSetup). */
export const databaseUrl = (): string => inject("databaseUrl")

export const freshSchema = () => `jwtest_${randomBytes(5).toString("hex")}`

/** Drops `schema` on a connection of its own, straight to the suite's database (for schemas of child processes). */
export const dropSchema = (schema: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: databaseUrl() })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  })

/** A `PgClient` on the suite's database. */
export const pgLayer = (maxConnections = 24) =>
  PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections, applicationName: "jobwatch-test" })

/** Drops the schema when the layer's scope closes (after the services built on top of it stopped). */
const dropSchemaLayer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    yield* Effect.addFinalizer(() => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).pipe(Effect.ignore))
  })
)

/**
 * A `PgClient`/`SqlClient` and a `JobWatchConfig` on a fresh schema of the suite's database, dropped at the end.
 * The schema is empty: build `JobWatch.layer` (or `MigrationsLive`) on top.
 */
export const layer = (config: JobWatchConfigInput = {}, options: { readonly maxConnections?: number } = {}) => {
  const base = Layer.merge(
    pgLayer(options.maxConnections),
    JobWatchConfig.layer({ schema: freshSchema(), ...config })
  )
  return Layer.provideMerge(dropSchemaLayer, base)
}
