// `npm run bench -- enqueue`: jobs/s of `Jobs.enqueue` (one job per call) and `Jobs.enqueueBatch` (1,000 per
// call, payload `{}`, as the side-by-side harness's scenario c), beside the raw-SQL floor's enqueue (`rawFloor.ts`,
// the harness's raw-pg floor: one multi-row INSERT … SELECT FROM unnest($1::jsonb[]) per batch, one row per call for
// singles). Each jobwatch job also writes its first event row (and rings the doorbell). Figures are ratios to it.
import { Effect } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import { Jobs } from "../../src/Jobs.js"
import { createRawFloor, rawFloorClient } from "./rawFloor.js"
import { median } from "./stats.js"

const rounds = 7
const singlePerRound = 500
const batchesPerRound = 10
const batchSize = 1000

/** Jobs/s of one round. */
const rate = (round: Effect.Effect<number, unknown>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const n = yield* round
    return n / ((performance.now() - started) / 1000)
  })

/**
 * One warm-up round of each, then `rounds` rounds alternating jobwatch and the baseline, so that the machine's
 * drift touches both alike; answers the rates of each side and the ratio of each pair of rounds.
 */
const compare = (ours: Effect.Effect<number, unknown>, theirs: Effect.Effect<number, unknown>) =>
  Effect.gen(function*() {
    yield* ours
    yield* theirs
    const a: Array<number> = []
    const b: Array<number> = []
    for (let i = 0; i < rounds; i++) {
      a.push(yield* rate(ours))
      b.push(yield* rate(theirs))
    }
    return { ours: a, theirs: b, ratios: a.map((x, i) => x / b[i]!) }
  })

const fmt = (rates: ReadonlyArray<number>) =>
  `${median(rates).toFixed(0).padStart(7)} jobs/s  (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})`

export const enqueue = (url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const { schema } = yield* JobWatchConfig
    yield* Effect.promise(() => createRawFloor(url, schema))
    const raw = yield* Effect.acquireRelease(Effect.promise(() => rawFloorClient(url, schema)), (c) => Effect.promise(c.close))

    const single = Effect.gen(function*() {
      for (let i = 0; i < singlePerRound; i++) yield* jobs.enqueue({ name: "render", payload: {} })
      return singlePerRound
    })
    const batch = Effect.gen(function*() {
      for (let b = 0; b < batchesPerRound; b++) {
        yield* jobs.enqueueBatch(Array.from({ length: batchSize }, () => ({ name: "render", queue: "bench", payload: {} })))
      }
      return batchesPerRound * batchSize
    })
    const floorSingle = Effect.promise(async () => {
      for (let i = 0; i < singlePerRound; i++) await raw.enqueue(1)
      return singlePerRound
    })
    const floorBatch = Effect.promise(async () => {
      await raw.enqueue(batchesPerRound * batchSize)
      return batchesPerRound * batchSize
    })

    const singles = yield* compare(single, floorSingle)
    const batches = yield* compare(batch, floorBatch)
    const ratio = median(batches.ratios)
    const spread = (xs: ReadonlyArray<number>) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`
    console.log(`enqueue throughput, median of ${rounds} alternating rounds (min–max), after one warm-up round each`)
    console.log(`  single   jobwatch ${fmt(singles.ours)}   floor ${fmt(singles.theirs)}   ratio ${median(singles.ratios).toFixed(2)}× (${spread(singles.ratios)})`)
    console.log(`  batch    jobwatch ${fmt(batches.ours)}   floor ${fmt(batches.theirs)}   ratio ${ratio.toFixed(2)}× (${spread(batches.ratios)})`)
    console.log(`  target: batch ≥ 0.3× the floor: ${ratio >= 0.3 ? "met" : "NOT met"}`)
  })
