import { SqlClient } from "@effect/sql"
import { Data, Effect } from "effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { JobWatchConfig } from "./Config.js"

/** A migration file could not be read or applied. */
export class MigrationError extends Data.TaggedError("MigrationError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface Migration {
  readonly id: number
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

/** The `sql/` directory shipped beside `src/`. */
export const directory = fileURLToPath(new URL("../sql/", import.meta.url))

const fileName = /^(\d{4})_([a-z0-9_]+)\.sql$/

/** Reads `sql/NNNN_name.sql`, in order of NNNN. */
export const load = (dir: string = directory): Effect.Effect<ReadonlyArray<Migration>, MigrationError> =>
  Effect.tryPromise({
    try: async () => {
      const files = (await Fs.readdir(dir)).filter((file) => file.endsWith(".sql")).sort()
      const migrations: Array<Migration> = []
      for (const file of files) {
        const match = fileName.exec(file)
        if (match === null) throw new Error(`${file} is not named NNNN_snake_name.sql`)
        const sql = await Fs.readFile(`${dir}/${file}`, "utf8")
        const id = Number(match[1])
        if (migrations.some((m) => m.id === id)) throw new Error(`two migrations have the id ${id}`)
        migrations.push({ id, name: match[2]!, sql, checksum: createHash("sha256").update(sql).digest("hex") })
      }
      return migrations
    },
    catch: (cause) => new MigrationError({ message: `cannot load the migrations: ${String(cause)}`, cause })
  })

/** An arbitrary constant: the first key of the advisory lock that serialises migrations per schema. */
const lockClass = 0x6a77

/**
 * Applies the pending migrations into the configured schema, in one transaction under an advisory lock, so that
 * processes starting together apply each migration exactly once and all come up with the same schema.
 */
export const run = (
  migrations?: ReadonlyArray<Migration>
): Effect.Effect<ReadonlyArray<number>, MigrationError, SqlClient.SqlClient | JobWatchConfig> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const all = migrations ?? (yield* load())
    const table = sql(`${schema}.jobwatch_migrations`)
    const ident = `"${schema}"`
    const applied = yield* Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${lockClass}, hashtext(${schema}))`
      yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${ident}`)
      yield* sql`CREATE TABLE IF NOT EXISTS ${table} (
        id integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
      const done = yield* sql<{ id: number; checksum: string }>`SELECT id, checksum FROM ${table}`
      const known = new Map(done.map((row) => [row.id, row.checksum]))
      const newlyApplied: Array<number> = []
      for (const migration of all) {
        const checksum = known.get(migration.id)
        if (checksum !== undefined) {
          if (checksum !== migration.checksum) {
            yield* Effect.logWarning(`migration ${migration.id}_${migration.name} changed after it was applied`)
          }
          continue
        }
        yield* sql.unsafe(`SET LOCAL search_path TO ${ident}`)
        yield* sql.unsafe(migration.sql).pipe(
          Effect.mapError((cause) =>
            new MigrationError({
              message: `migration ${migration.id}_${migration.name} failed: ${cause.cause instanceof Error ? cause.cause.message : cause.message}`,
              cause
            })
          )
        )
        yield* sql`INSERT INTO ${table} (id, name, checksum) VALUES (${migration.id}, ${migration.name}, ${migration.checksum})`
        newlyApplied.push(migration.id)
      }
      return newlyApplied
    }).pipe(
      sql.withTransaction,
      Effect.catchTag("SqlError", (cause) =>
        new MigrationError({ message: `migrations failed: ${cause.cause instanceof Error ? cause.cause.message : cause.message}`, cause })
      )
    )
    if (applied.length > 0) yield* Effect.logInfo(`applied migrations ${applied.join(", ")} to schema ${schema}`)
    return applied
  }).pipe(Effect.withSpan("Migrations.run"))
