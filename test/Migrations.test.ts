import { assert, describe, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Either } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import * as Migrations from "../src/Database/Migrations.js"
import { runScript } from "./support/processes.js"
import { databaseUrl } from "./support/TestDb.js"
import * as TestDb from "./support/TestDb.js"

/** Runs the migration child process; resolves with what it printed. */
const migrateInChild = (schema: string) => runScript("migrateChild.ts", [databaseUrl(), schema])

const state = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const migrations = yield* sql<{ id: number }>`
    SELECT id FROM ${sql(`${schema}.jobwatch_migrations`)} WHERE id IS NOT NULL ORDER BY id`
  const tables = yield* sql<{ name: string }>`
    SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ${schema} ORDER BY 1`
  return { migrations: migrations.map((row) => row.id), tables: tables.map((row) => row.name) }
})

const schemaExists = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const rows = yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = ${schema}`
  return rows.length === 1
})

describe("migrations", () => {
  it.live("two processes migrating one fresh schema at once: applied once, both succeed", () =>
    Effect.gen(function*() {
      const { schema } = yield* JobWatchConfig
      const all = yield* Migrations.load()
      const results = yield* Effect.all([migrateInChild(schema), migrateInChild(schema)], { concurrency: 2 })
      for (const result of results) assert.strictEqual(result.code, 0, result.stderr)
      // the last line is the JSON (the logger writes to stdout too)
      const applied = results.map((result) => JSON.parse(result.stdout.trim().split("\n").pop()!) as Array<number>)
      // one of them applied everything, the other found it done
      assert.sameDeepMembers(applied, [all.map((m) => m.id), []])
      const after = yield* state
      assert.deepStrictEqual(after.migrations, all.map((m) => m.id))
      assert.includeMembers(after.tables, ["jobs", "job_events", "jobwatch_migrations"])
    }).pipe(Effect.provide(TestDb.layer())), { timeout: 90_000 })

  it.live("ten concurrent runs in one process apply each migration once", () =>
    Effect.gen(function*() {
      const all = (yield* Migrations.load()).map((m) => m.id)
      const runs = yield* Effect.all(Array.from({ length: 10 }, () => Migrations.run()), { concurrency: "unbounded" })
      assert.strictEqual(runs.filter((applied) => applied.length > 0).length, 1)
      assert.deepStrictEqual((yield* state).migrations, all)
      assert.deepStrictEqual(yield* Migrations.run(), [])
    }).pipe(Effect.provide(TestDb.layer({}, { maxConnections: 12 }))))

  it.live("a failing migration leaves nothing behind, not even the schema", () =>
    Effect.gen(function*() {
      const good = { id: 1, name: "good", sql: "CREATE TABLE t (x int)", checksum: "a" }
      const bad = { id: 2, name: "bad", sql: "CREATE TABLE u (x nosuchtype)", checksum: "b" }
      const result = yield* Effect.either(Migrations.run([good, bad]))
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) assert.match(result.left.message, /migration 2_bad failed: .*nosuchtype/)
      assert.isFalse(yield* schemaExists)
      // fixed, it applies both
      assert.deepStrictEqual(yield* Migrations.run([good, { ...bad, sql: "CREATE TABLE u (x int)" }]), [1, 2])
    }).pipe(Effect.provide(TestDb.layer())))

  it.live("a later migration file is applied on the next start, the earlier ones are not rerun", () =>
    Effect.gen(function*() {
      const all = yield* Migrations.load()
      assert.deepStrictEqual(yield* Migrations.run(all), all.map((m) => m.id))
      const next = { id: 9999, name: "next", sql: "ALTER TABLE jobs ADD COLUMN extra text", checksum: "x" }
      assert.deepStrictEqual(yield* Migrations.run([...all, next]), [9999])
      assert.deepStrictEqual(yield* Migrations.run([...all, next]), [])
    }).pipe(Effect.provide(TestDb.layer())))

  it.live("repeatable files: applied after the versioned ones, again only when their checksum changed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { schema } = yield* JobWatchConfig
      const all = yield* Migrations.load()
      const live = yield* Migrations.loadRepeatable()
      assert.isAbove(live.length, 0)
      yield* Migrations.run(all, live)
      const recorded = () =>
        sql<{ name: string; checksum: string }>`
          SELECT name, checksum FROM ${sql(`${schema}.jobwatch_migrations`)} WHERE id IS NULL ORDER BY name`
      assert.deepStrictEqual((yield* recorded()).map((row) => row.name), live.map((file) => file.name).sort())
      const fn = (body: string) => ({
        name: "functions/zz_probe",
        sql: `CREATE OR REPLACE FUNCTION zz_probe() RETURNS int LANGUAGE sql AS $$ SELECT ${body} $$`,
        checksum: body
      })
      yield* Migrations.run(all, [...live, fn("1")])
      const probe = () => sql<{ v: number }>`SELECT ${sql(`${schema}.zz_probe`)}() AS v`.pipe(Effect.map((r) => r[0]!.v))
      assert.strictEqual(yield* probe(), 1)
      // changed: replaced in place; the versioned ones are not rerun
      assert.deepStrictEqual(yield* Migrations.run(all, [...live, fn("2")]), [])
      assert.strictEqual(yield* probe(), 2)
      assert.strictEqual((yield* recorded()).find((row) => row.name === "functions/zz_probe")?.checksum, "2")
    }).pipe(Effect.provide(TestDb.layer())))
})
