// `npm run bench -- enqueue`: jobs/s of `Jobs.enqueue` (one job per call) and `Jobs.enqueueBatch` (1,000 per
// call), beside a bare INSERT into a one-table baseline on the same database and pool: one row per statement,
// and 1,000 rows in one statement. Each jobwatch job also writes its first event row (and rings the doorbell).
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { JobWatchConfig } from "../../src/Config.js"
import { Jobs } from "../../src/Jobs.js"
import { median } from "./stats.js"

const rounds = 7
const singlePerRound = 500
const batchesPerRound = 10
const batchSize = 1000

const payload = (i: number) => ({
  userId: `user-${i % 97}`,
  template: "invoice",
  locale: "en-GB",
  pages: 3,
  options: { color: true, dpi: 300 }
})

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

export const enqueue = (_url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const table = sql(`${schema}.bench_baseline`)
    yield* sql`CREATE TABLE ${table} (
      id uuid PRIMARY KEY, name text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`

    const single = Effect.gen(function*() {
      for (let i = 0; i < singlePerRound; i++) yield* jobs.enqueue({ name: "render", payload: payload(i) })
      return singlePerRound
    })
    const batch = Effect.gen(function*() {
      for (let b = 0; b < batchesPerRound; b++) {
        yield* jobs.enqueueBatch(Array.from({ length: batchSize }, (_, i) => ({ name: "render", payload: payload(i) })))
      }
      return batchesPerRound * batchSize
    })
    const baseSingle = Effect.gen(function*() {
      for (let i = 0; i < singlePerRound; i++) {
        yield* sql`INSERT INTO ${table} (id, name, payload) VALUES (${randomUUID()}, 'render', ${JSON.stringify(payload(i))}::jsonb)`
      }
      return singlePerRound
    })
    const baseBatch = Effect.gen(function*() {
      for (let b = 0; b < batchesPerRound; b++) {
        const rows = Array.from({ length: batchSize }, (_, i) => ({ id: randomUUID(), name: "render", payload: payload(i) }))
        yield* sql`INSERT INTO ${table} (id, name, payload)
          SELECT id, name, payload FROM json_to_recordset(${JSON.stringify(rows)}::json) AS x(id uuid, name text, payload jsonb)`
      }
      return batchesPerRound * batchSize
    })

    const singles = yield* compare(single, baseSingle)
    const batches = yield* compare(batch, baseBatch)
    const ratio = median(batches.ratios)
    const spread = (xs: ReadonlyArray<number>) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`
    console.log(`enqueue throughput, median of ${rounds} alternating rounds (min–max), after one warm-up round each`)
    console.log(`  single   jobwatch ${fmt(singles.ours)}   bare INSERT ${fmt(singles.theirs)}   ratio ${median(singles.ratios).toFixed(2)}× (${spread(singles.ratios)})`)
    console.log(`  batch    jobwatch ${fmt(batches.ours)}   bare INSERT ${fmt(batches.theirs)}   ratio ${ratio.toFixed(2)}× (${spread(batches.ratios)})`)
    console.log(`  target: batch ≥ 0.4× the baseline: ${ratio >= 0.4 ? "met" : "NOT met"}`)
  })
