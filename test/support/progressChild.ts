// Reports progress 0.5, 1.5, …, 99.5 (forced, 10 ms apart) on job argv[4] (in database argv[2], schema argv[3])
// as the worker argv[5], then prints how many reports were refused as regressions: the "other process" of
// test/Progress.test.ts.
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { ProgressReporter } from "../../src/ProgressReporter.js"

const [url, schema, id, workerId] = process.argv.slice(2)
if (url === undefined || schema === undefined || id === undefined || workerId === undefined) {
  throw new Error("usage: progressChild <url> <schema> <job id> <worker id>")
}

const program = Effect.gen(function*() {
  const reporter = yield* ProgressReporter
  let refused = 0
  for (let i = 0; i < 100; i++) {
    yield* reporter.progress(id as JobId, { percent: i + 0.5, force: true }, { workerId }).pipe(
      Effect.catchTag("ProgressRegression", () => Effect.sync(() => refused++))
    )
    yield* Effect.sleep("10 millis")
  }
  process.stdout.write(`${refused}\n`)
}).pipe(
  Effect.provide(
    ProgressReporter.Default.pipe(
      Layer.provide(Layer.merge(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }), JobWatchConfig.layer({ schema })))
    )
  )
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
