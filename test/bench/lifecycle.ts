// `npm run bench -- lifecycle`: 10,000 no-op jobs enqueued in batches of 1,000, each batch awaited as it is
// enqueued (`waitForAll`), run by `Worker.run` at concurrency 20 in another process: jobs/s from the first enqueue to
// the last observed completion. Beside it, in the same run, the raw-SQL floor (`rawFloor.ts`, the side-by-side
// harness's raw-pg floor: batched claims, completions that NOTIFY and claim the next jobs in one statement) through
// the same steps. Rounds alternate between the two; figures are ratios to the floor.
import { Effect } from "effect"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import { Jobs } from "../../src/Jobs.js"
import { createRawFloor, rawFloorClient } from "./rawFloor.js"
import { median, monotonicMs } from "./stats.js"
import { workerProcess } from "./workerProcess.js"

const jobsPerRound = 10_000
const batchSize = 1000
const concurrency = 20
const rounds = 3

export const lifecycle = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const jobs = yield* Jobs
    const watcher = yield* CompletionWatcher
    yield* Effect.promise(() => createRawFloor(url, schema))
    const raw = yield* Effect.acquireRelease(Effect.promise(() => rawFloorClient(url, schema)), (c) => Effect.promise(c.close))
    const workers = yield* workerProcess(url, schema)

    /** One round of jobwatch: jobs/s. */
    const ours = (n: number, round: number) =>
      Effect.gen(function*() {
        const queue = `life-${round}`
        yield* workers.start({ kind: "jobwatch", queue, concurrency, delayMinMs: 0, delayMaxMs: 0 })
        const started = monotonicMs()
        const waits = []
        for (let i = 0; i < n; i += batchSize) {
          const refs = yield* jobs.enqueueBatch(Array.from({ length: Math.min(batchSize, n - i) }, () => ({
            name: "noop",
            queue,
            payload: {}
          })))
          waits.push(yield* Effect.fork(Effect.zipRight(watcher.waitForAll(refs.map((ref) => ref.id)), Effect.sync(monotonicMs))))
        }
        const ends = yield* Effect.forEach(waits, (fiber) => fiber.await.pipe(Effect.flatten))
        yield* workers.stop
        return n / ((Math.max(...ends) - started) / 1000)
      })

    /** One round of the floor: jobs/s. */
    const floor = (n: number) =>
      Effect.gen(function*() {
        yield* workers.start({ kind: "floor", queue: "", concurrency, delayMinMs: 0, delayMaxMs: 0 })
        const ends = yield* Effect.promise(async () => {
          const started = monotonicMs()
          const waits: Array<Promise<ReadonlyMap<string, number>>> = []
          for (let i = 0; i < n; i += batchSize) waits.push(raw.waitFor(await raw.enqueue(Math.min(batchSize, n - i))))
          const resolved = await Promise.all(waits)
          return Math.max(...resolved.flatMap((m) => [...m.values()])) - started
        })
        yield* workers.stop
        yield* Effect.promise(raw.reset)
        return n / (ends / 1000)
      })

    // warm-up: a small round of each
    yield* ours(2000, 0)
    yield* floor(2000)
    const a: Array<number> = []
    const b: Array<number> = []
    for (let round = 1; round <= rounds; round++) {
      a.push(yield* ours(jobsPerRound, round))
      b.push(yield* floor(jobsPerRound))
    }
    const ratios = a.map((x, i) => x / b[i]!)
    const ratio = median(ratios)
    const fmt = (xs: ReadonlyArray<number>) =>
      `${median(xs).toFixed(0)} jobs/s (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
    console.log(`${jobsPerRound} no-op jobs per round, concurrency ${concurrency} in another process, median of ${rounds} alternating rounds (min–max)`)
    console.log(`  raw-SQL floor (batched SKIP LOCKED claims, completion + NOTIFY + next claim in one statement) ${fmt(b)}`)
    console.log(`  jobwatch (enqueueBatch, Worker.run, waitForAll)  ${fmt(a)}   ratio ${ratio.toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}); target ≥ 0.5×: ${ratio >= 0.5 ? "met" : "NOT met"}`)
  })
