import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Data, Effect } from "effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { JobWatchConfig } from "../Config.js"

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

/**
 * A repeatable file (`sql/functions/<name>.sql`): the one live definition of functions and triggers, written with
 * `CREATE OR REPLACE`, applied after the versioned migrations whenever its checksum differs from the one recorded.
 */
export interface Repeatable {
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

/** The `sql/` directory shipped beside `src/`. */
export const directory = fileURLToPath(new URL("../../sql/", import.meta.url))

const fileName = /^(\d{4})_([a-z0-9_]+)\.sql$/
const repeatableName = /^([a-z0-9_]+)\.sql$/
const checksumOf = (sql: string) => createHash("sha256").update(sql).digest("hex")

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
        migrations.push({ id, name: match[2]!, sql, checksum: checksumOf(sql) })
      }
      return migrations
    },
    catch: (cause) => new MigrationError({ message: `cannot load the migrations: ${String(cause)}`, cause })
  })

/** Reads `sql/functions/<name>.sql`, in order of name (a file may use what an earlier one defines). */
export const loadRepeatable = (dir: string = `${directory}functions`): Effect.Effect<ReadonlyArray<Repeatable>, MigrationError> =>
  Effect.tryPromise({
    try: async () => {
      const files = (await Fs.readdir(dir)).filter((file) => file.endsWith(".sql")).sort()
      const repeatables: Array<Repeatable> = []
      for (const file of files) {
        const match = repeatableName.exec(file)
        if (match === null) throw new Error(`functions/${file} is not named snake_name.sql`)
        const sql = await Fs.readFile(`${dir}/${file}`, "utf8")
        repeatables.push({ name: `functions/${match[1]!}`, sql, checksum: checksumOf(sql) })
      }
      return repeatables
    },
    catch: (cause) => new MigrationError({ message: `cannot load the repeatable migrations: ${String(cause)}`, cause })
  })

/** An arbitrary constant: the first key of the advisory lock that serialises migrations per schema. */
const lockClass = 0x6a77

const messageOf = (cause: SqlError.SqlError) =>
  cause.cause instanceof Error ? cause.cause.message : cause.message

/**
 * Applies the pending versioned migrations, then the repeatable files whose checksum changed, into the configured
 * schema, in one transaction under an advisory lock, so that processes starting together apply each exactly once
 * and all come up with the same schema. Answers the ids of the versioned migrations applied. Given `migrations`
 * (tests), no repeatable file is applied unless `repeatables` are given too.
 */
export const run = (
  migrations?: ReadonlyArray<Migration>,
  repeatables?: ReadonlyArray<Repeatable>
): Effect.Effect<ReadonlyArray<number>, MigrationError, SqlClient.SqlClient | JobWatchConfig> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const all = migrations ?? (yield* load())
    const live = repeatables ?? (migrations === undefined ? yield* loadRepeatable() : [])
    const table = sql(`${schema}.jobwatch_migrations`)
    const ident = `"${schema}"`
    const applied = yield* Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${lockClass}, hashtext(${schema}))`
      yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${ident}`)
      // versioned migrations by id; repeatable files (id null) by name, as Flyway records them
      yield* sql`CREATE TABLE IF NOT EXISTS ${table} (
        id integer,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
      const keyed = yield* sql<{ readonly name: string }>`
        SELECT conname AS name FROM pg_constraint WHERE conrelid = ${`${ident}.jobwatch_migrations`}::regclass
          AND contype = 'p'`
      if (keyed.length > 0) {
        // a table of before the repeatable files: its primary key on id admits no null
        yield* sql`ALTER TABLE ${table} DROP CONSTRAINT ${sql(keyed[0]!.name)}, ALTER COLUMN id DROP NOT NULL`
      }
      yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS jobwatch_migrations_versioned ON ${table} (id) WHERE id IS NOT NULL`
      yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS jobwatch_migrations_repeatable ON ${table} (name) WHERE id IS NULL`
      const done = yield* sql<{ id: number | null; name: string; checksum: string }>`
        SELECT id, name, checksum FROM ${table}`
      const known = new Map(done.flatMap((row) => row.id === null ? [] : [[row.id, row.checksum] as const]))
      const knownLive = new Map(done.flatMap((row) => row.id === null ? [[row.name, row.checksum] as const] : []))
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
            new MigrationError({ message: `migration ${migration.id}_${migration.name} failed: ${messageOf(cause)}`, cause })
          )
        )
        yield* sql`INSERT INTO ${table} (id, name, checksum) VALUES (${migration.id}, ${migration.name}, ${migration.checksum})`
        newlyApplied.push(migration.id)
      }
      const replaced: Array<string> = []
      for (const file of live) {
        const checksum = knownLive.get(file.name)
        if (checksum === file.checksum) continue
        yield* sql.unsafe(`SET LOCAL search_path TO ${ident}`)
        yield* sql.unsafe(file.sql).pipe(
          Effect.mapError((cause) => new MigrationError({ message: `${file.name}.sql failed: ${messageOf(cause)}`, cause }))
        )
        yield* checksum === undefined
          ? sql`INSERT INTO ${table} (id, name, checksum) VALUES (NULL, ${file.name}, ${file.checksum})`
          : sql`UPDATE ${table} SET checksum = ${file.checksum}, applied_at = now() WHERE id IS NULL AND name = ${file.name}`
        replaced.push(file.name)
      }
      return { versioned: newlyApplied, replaced }
    }).pipe(
      sql.withTransaction,
      Effect.catchTag("SqlError", (cause) => new MigrationError({ message: `migrations failed: ${messageOf(cause)}`, cause }))
    )
    if (applied.versioned.length > 0) {
      yield* Effect.logInfo(`applied migrations ${applied.versioned.join(", ")} to schema ${schema}`)
    }
    if (applied.replaced.length > 0) yield* Effect.logInfo(`applied ${applied.replaced.join(", ")} to schema ${schema}`)
    return applied.versioned
  }).pipe(Effect.withSpan("Migrations.run"), Effect.annotateLogs("module", "Migrations"))
