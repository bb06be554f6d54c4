// Reports progress 0.5, 1.5, …, 99.5 (forced, 10 ms apart) on job argv[4] (in database argv[2], schema argv[3])
// as the worker argv[5], then prints how many reports were refused as regressions: the "other process" of
// test/Progress.test.ts.
import { Effect, Layer } from "effect"
import { childDatabase, runChild } from "./child.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { ProgressReporter } from "../../src/Workers/ProgressReporter.js"

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
}).pipe(Effect.provide(ProgressReporter.Default.pipe(Layer.provide(childDatabase(url, schema)))))

runChild(program)
