// Starts jobwatch's services on the embedded PostgreSQL in argv[2] (as `npm start` does without DATABASE_URL),
// enqueues one job and prints `job <id>`. Mode argv[3]: `once` stops and exits; `hold` keeps running until killed.
import { Effect, Layer } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import * as Database from "../../src/Database.js"
import * as JobWatch from "../../src/JobWatch.js"
import { Jobs } from "../../src/Jobs.js"

const [dataDir, mode] = process.argv.slice(2)
if (dataDir === undefined || (mode !== "once" && mode !== "hold")) throw new Error("usage: embeddedChild <dir> once|hold")

const program = Effect.gen(function*() {
  const ref = yield* (yield* Jobs).enqueue({ name: `from-${process.pid}` })
  process.stdout.write(`job ${ref.id}\n`)
  if (mode === "hold") yield* Effect.never
}).pipe(
  Effect.provide(
    JobWatch.layer.pipe(Layer.provideMerge(Database.layer), Layer.provideMerge(JobWatchConfig.layer({ dataDir })))
  )
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
