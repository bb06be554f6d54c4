// `npm run bench -- enqueue`: jobs/s of `Jobs.enqueue` (one job per call) and `Jobs.enqueueBatch` (1,000 per
// call), beside a bare INSERT into a one-table baseline on the same database and pool: one row per statement,
// and 1,000 rows in one statement. Each jobwatch job also writes its first event row (and rings the doorbell).
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { JobWatchConfig } from "../../src/Config.js"
import { Jobs } from "../../src/Jobs.js"
import { median } from "./stats.js"

const rounds = 5
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

/** Runs `round` (answering jobs done) once to warm up, then `rounds` times; answers jobs/s per round. */
const measure = (round: Effect.Effect<number, unknown>) =>
  Effect.gen(function*() {
    yield* round
    const rates: Array<number> = []
    for (let i = 0; i < rounds; i++) {
      const started = performance.now()
      const n = yield* round
      rates.push(n / ((performance.now() - started) / 1000))
    }
    return rates
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

    const single = measure(Effect.gen(function*() {
      for (let i = 0; i < singlePerRound; i++) yield* jobs.enqueue({ name: "render", payload: payload(i) })
      return singlePerRound
    }))
    const batch = measure(Effect.gen(function*() {
      for (let b = 0; b < batchesPerRound; b++) {
        yield* jobs.enqueueBatch(Array.from({ length: batchSize }, (_, i) => ({ name: "render", payload: payload(i) })))
      }
      return batchesPerRound * batchSize
    }))
    const baseSingle = measure(Effect.gen(function*() {
      for (let i = 0; i < singlePerRound; i++) {
        yield* sql`INSERT INTO ${table} (id, name, payload) VALUES (${randomUUID()}, 'render', ${JSON.stringify(payload(i))}::jsonb)`
      }
      return singlePerRound
    }))
    const baseBatch = measure(Effect.gen(function*() {
      for (let b = 0; b < batchesPerRound; b++) {
        const rows = Array.from({ length: batchSize }, (_, i) => ({ id: randomUUID(), name: "render", payload: payload(i) }))
        yield* sql`INSERT INTO ${table} (id, name, payload)
          SELECT id, name, payload FROM json_to_recordset(${JSON.stringify(rows)}::json) AS x(id uuid, name text, payload jsonb)`
      }
      return batchesPerRound * batchSize
    }))

    // interleaved, so that drift of the machine touches both sides alike
    const oursSingle = yield* single
    const theirsSingle = yield* baseSingle
    const oursBatch = yield* batch
    const theirsBatch = yield* baseBatch
    const ratio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => median(a) / median(b)
    const batchRatio = ratio(oursBatch, theirsBatch)
    console.log(`enqueue throughput, median of ${rounds} rounds (min–max), after one warm-up round`)
    console.log(`  single   jobwatch ${fmt(oursSingle)}   bare INSERT ${fmt(theirsSingle)}   ratio ${ratio(oursSingle, theirsSingle).toFixed(2)}×`)
    console.log(`  batch    jobwatch ${fmt(oursBatch)}   bare INSERT ${fmt(theirsBatch)}   ratio ${batchRatio.toFixed(2)}×`)
    console.log(`  target: batch ≥ 0.4× the baseline: ${batchRatio >= 0.4 ? "met" : "NOT met"}`)
  })
