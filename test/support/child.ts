// What the child processes of the tests share: their database layer and how they end.
import { PgClient } from "@effect/sql-pg"
import type { Effect as E } from "effect"
import { Effect, Layer, Redacted } from "effect"
import { JobWatchConfig } from "../../src/Config.js"

/** A small pool on `url` and the configuration of `schema`. */
export const childDatabase = (url: string, schema: string) =>
  Layer.merge(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }), JobWatchConfig.layer({ schema }))

/** Runs `program` and exits: 0 when it succeeded, 1 with the error on stderr otherwise. */
export const runChild = <A, E>(program: E.Effect<A, E>) =>
  Effect.runPromise(program).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`)
      process.exit(1)
    }
  )
