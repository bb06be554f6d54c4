// Works the jobs of queue argv[4] (in database argv[2], schema argv[3]) a few at a time until none is left: claims,
// starts, reports progress 25 and 50, completes; prints how many it completed. One of the two "other processes" of
// test/MultiProcess.test.ts.
import { Effect, Layer } from "effect"
import { childDatabase, runChild } from "./child.js"
import { Repos } from "./repos.js"

const [url, schema, queue] = process.argv.slice(2)
if (url === undefined || schema === undefined || queue === undefined) {
  throw new Error("usage: workChild <url> <schema> <queue>")
}

const program = Effect.gen(function*() {
  const repo = yield* Repos
  const workerId = `child-${process.pid}`
  let done = 0
  while (true) {
    const claimed = yield* repo.claim({ workerId, queues: [queue], limit: 3, leaseMs: 60_000 })
    if (claimed.length === 0) break
    yield* Effect.forEach(claimed, (job) =>
      Effect.gen(function*() {
        yield* repo.start(job.id)
        yield* repo.writeProgress(job.id, { percent: 25 }, { workerId, now: new Date() })
        yield* repo.writeProgress(job.id, { percent: 50 }, { workerId, now: new Date() })
        yield* repo.complete(job.id, { resultJson: JSON.stringify({ by: workerId }) })
        done++
      }), { concurrency: "unbounded", discard: true })
  }
  process.stdout.write(`${done}\n`)
}).pipe(Effect.provide(Repos.Default.pipe(Layer.provide(childDatabase(url, schema)))))

runChild(program)
