// Runs jobwatch's migrations once against argv[2] (a database URL) into schema argv[3], then prints the ids it
// applied as JSON. Started twice at once by test/Migrations.test.ts to prove two processes migrate safely.
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import * as Migrations from "../../src/Database/Migrations.js"

const [url, schema] = process.argv.slice(2)
if (url === undefined || schema === undefined) throw new Error("usage: migrateChild <url> <schema>")

const program = Migrations.run().pipe(
  Effect.tap((applied) => Effect.sync(() => process.stdout.write(`${JSON.stringify(applied)}\n`))),
  Effect.provide(
    Layer.merge(
      PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }),
      JobWatchConfig.layer({ schema })
    )
  ),
  Effect.withLogSpan("migrate")
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
