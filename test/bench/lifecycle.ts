// `npm run bench -- lifecycle`: 10,000 no-op jobs enqueued in batches of 1,000, run by `Worker.run` at concurrency
// 20 and all awaited with `waitForAll`: jobs/s from the first enqueue to the last observed completion. Beside it, in
// the same run, the raw-SQL floor of the latency bench: the same rows inserted in batches, 20 bare connections each
// claiming one row with SKIP LOCKED and completing it with one UPDATE that NOTIFYs, and one LISTEN connection that
// observes the completions. Rounds alternate between the two.
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import { Jobs } from "../../src/Jobs.js"
import * as Worker from "../../src/Workers/Worker.js"
import { median } from "./stats.js"

const jobsPerRound = 10_000
const batchSize = 1000
const concurrency = 20
const rounds = 3

/** One round of jobwatch: jobs/s. */
const ours = (n: number, round: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const watcher = yield* CompletionWatcher
    const queue = `life-${round}`
    const scope = yield* Scope.make()
    yield* Worker.run({ queues: [queue], concurrency, handler: () => Effect.void }).pipe(Scope.extend(scope))
    const started = performance.now()
    const ids: Array<string> = []
    for (let i = 0; i < n; i += batchSize) {
      const refs = yield* jobs.enqueueBatch(Array.from({ length: Math.min(batchSize, n - i) }, (_, k) => ({
        name: "noop",
        queue,
        payload: { k: i + k }
      })))
      ids.push(...refs.map((ref) => ref.id))
    }
    const outcomes = yield* watcher.waitForAll(ids)
    const elapsed = performance.now() - started
    yield* Scope.close(scope, Exit.void)
    const completed = outcomes.filter((o) => o.status === "completed").length
    if (completed !== n) return yield* Effect.die(new Error(`${n - completed} jobs did not complete`))
    return n / (elapsed / 1000)
  })

/** One round of the raw-SQL floor: jobs/s. */
const floor = (url: string, table: string, channel: string, n: number) =>
  Effect.promise(async () => {
    const connect = async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }
    const listener = await connect()
    const workers = await Promise.all(Array.from({ length: concurrency }, connect))
    const inserter = await connect()
    try {
      let seen = 0
      let resolveAll!: () => void
      const all = new Promise<void>((resolve) => (resolveAll = resolve))
      listener.on("notification", () => {
        if (++seen === n) resolveAll()
      })
      await listener.query(`LISTEN "${channel}"`)
      let inserted = 0
      let done = false
      const work = async (client: pg.Client) => {
        while (!done) {
          const claimed = await client.query<{ id: string }>(
            `UPDATE ${table} SET status = 'running' WHERE id = (
               SELECT id FROM ${table} WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
             ) RETURNING id`
          )
          const id = claimed.rows[0]?.id
          if (id === undefined) {
            if (inserted >= n) return
            await new Promise((resolve) => setImmediate(resolve))
            continue
          }
          await client.query(
            `WITH u AS (UPDATE ${table} SET status = 'completed', result = 'null' WHERE id = $1 RETURNING id)
             SELECT pg_notify($2, id::text) FROM u`,
            [id, channel]
          )
        }
      }
      const started = performance.now()
      const running = workers.map(work)
      for (let i = 0; i < n; i += batchSize) {
        await inserter.query(
          `INSERT INTO ${table} (id, status, payload)
           SELECT gen_random_uuid(), 'pending', jsonb_build_object('k', k) FROM generate_series($1::int, $2::int) AS k`,
          [i, Math.min(n, i + batchSize) - 1]
        )
        inserted = Math.min(n, i + batchSize)
      }
      await all
      const elapsed = performance.now() - started
      done = true
      await Promise.all(running)
      return n / (elapsed / 1000)
    } finally {
      await Promise.all([listener, inserter, ...workers].map((client) => client.end().catch(() => undefined)))
    }
  })

export const lifecycle = (url: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const table = `"${schema}".bench_floor_life`
    const channel = `${schema}.bench_floor_life`
    yield* sql.unsafe(`CREATE TABLE ${table} (id uuid PRIMARY KEY, status text NOT NULL, payload jsonb, result jsonb)`)
    yield* sql.unsafe(`CREATE INDEX ON ${table} (id) WHERE status = 'pending'`)
    // warm-up: a small round of each
    yield* ours(2000, 0)
    yield* floor(url, table, channel, 2000)
    const a: Array<number> = []
    const b: Array<number> = []
    for (let round = 1; round <= rounds; round++) {
      a.push(yield* ours(jobsPerRound, round))
      b.push(yield* floor(url, table, channel, jobsPerRound))
    }
    const ratios = a.map((x, i) => x / b[i]!)
    const ratio = median(ratios)
    const fmt = (xs: ReadonlyArray<number>) =>
      `${median(xs).toFixed(0)} jobs/s (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
    console.log(`${jobsPerRound} no-op jobs per round, concurrency ${concurrency}, median of ${rounds} alternating rounds (min–max)`)
    console.log(`  jobwatch (enqueueBatch, Worker.run, waitForAll)  ${fmt(a)}`)
    console.log(`  raw-SQL floor (SKIP LOCKED claim, UPDATE+NOTIFY) ${fmt(b)}`)
    console.log(`  ratio ${ratio.toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}); target ≥ 0.6×: ${ratio >= 0.6 ? "met" : "NOT met"}`)
  })
