// Claims, starts and completes the jobs of queue argv[4] (in database argv[2], schema argv[3]) with the result
// {"by":"child"}, then exits: the "another process" of test/CompletionWatcher.test.ts.
import { Effect, Layer } from "effect"
import { childDatabase, runChild } from "./child.js"
import { Repos } from "./repos.js"

const [url, schema, queue] = process.argv.slice(2)
if (url === undefined || schema === undefined || queue === undefined) {
  throw new Error("usage: completeChild <url> <schema> <queue>")
}

const program = Effect.gen(function*() {
  const repo = yield* Repos
  const claimed = yield* repo.claim({ workerId: `child-${process.pid}`, queues: [queue], limit: 100, leaseMs: 60_000 })
  for (const job of claimed) {
    yield* repo.start(job.id)
    yield* repo.complete(job.id, { resultJson: JSON.stringify({ by: "child" }) })
  }
  process.stdout.write(`${claimed.length}\n`)
}).pipe(Effect.provide(Repos.Default.pipe(Layer.provide(childDatabase(url, schema)))))

runChild(program)
