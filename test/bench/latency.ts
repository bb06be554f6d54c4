// `npm run bench -- latency`: from a worker's completion call returning to the waiter resolving, jobwatch's
// CompletionWatcher beside a raw-SQL floor on the same database (an UPDATE with pg_notify in one statement, one
// bare LISTEN connection resolving the waiter). (a) idle: one job at a time, 300 samples; (b) load: 1,000 jobs in
// flight awaited at once, completed by 10 concurrent workers.
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import pg from "pg"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { JobsRepo } from "../../src/JobsRepo.js"
import { Notifications } from "../../src/Notifications.js"
import { ms, summarize } from "./stats.js"

const idleSamples = 300
const loadJobs = 1000
const workers = 10

type Summary = ReturnType<typeof summarize>
type Mode = "callback" | "fiber"

const sleep = (millis: number) => Effect.sleep(Duration.millis(millis))

/** The floor: a bare table, an UPDATE that NOTIFYs in the same statement, one LISTEN connection. */
const floor = (url: string, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = `"${schema}".bench_floor`
    const channel = `${schema}.bench_floor`
    yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (id uuid PRIMARY KEY, status text NOT NULL)`)
    const waiters = new Map<string, (at: number) => void>()
    const listener = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        client.on("notification", (msg) => {
          const resolve = waiters.get(msg.payload ?? "")
          if (resolve !== undefined) resolve(performance.now())
        })
        await client.connect()
        await client.query(`LISTEN "${channel}"`)
        return client
      }),
      (client) => Effect.promise(() => client.end())
    )
    void listener
    const clients = yield* Effect.acquireRelease(
      Effect.promise(() =>
        Promise.all(Array.from({ length: workers }, async () => {
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          return client
        }))
      ),
      (clients) => Effect.promise(() => Promise.all(clients.map((c) => c.end())))
    )
    const make = (n: number) =>
      Effect.promise(async () => {
        const rows = await clients[0]!.query<{ id: string }>(
          `INSERT INTO ${table} SELECT gen_random_uuid(), 'running' FROM generate_series(1, $1) RETURNING id`,
          [n]
        )
        return rows.rows.map((row) => row.id)
      })
    /**
     * A waiter on `id`: resolved by the LISTEN callback itself (`callback`), or a fiber awaiting a Deferred that
     * the callback completes (`fiber`: what any waiter in an Effect program pays to wake up).
     */
    const wait = (id: string, mode: Mode) =>
      Effect.gen(function*() {
        let resolved = 0
        if (mode === "callback") {
          const done = new Promise<void>((resolve) =>
            waiters.set(id, (at) => {
              resolved = at
              waiters.delete(id)
              resolve()
            })
          )
          return { done: Effect.promise(() => done), at: () => resolved }
        }
        const deferred = yield* Deferred.make<void>()
        waiters.set(id, () => {
          waiters.delete(id)
          Deferred.unsafeDone(deferred, Effect.void)
        })
        const fiber = yield* Effect.fork(
          Deferred.await(deferred).pipe(Effect.tap(() => Effect.sync(() => (resolved = performance.now()))))
        )
        return { done: Fiber.join(fiber), at: () => resolved }
      })
    const complete = (client: pg.Client, id: string) =>
      client.query(
        `WITH u AS (UPDATE ${table} SET status = 'completed' WHERE id = $1 RETURNING id) SELECT pg_notify($2, $1::text) FROM u`,
        [id, channel]
      )

    const idle = (mode: Mode) => Effect.gen(function*() {
      const ids = yield* make(idleSamples)
      const samples: Array<number> = []
      for (const id of ids) {
        const w = yield* wait(id, mode)
        const returned = yield* Effect.promise(async () => {
          await complete(clients[0]!, id)
          return performance.now()
        })
        yield* w.done
        samples.push(Math.max(0, w.at() - returned))
      }
      return summarize(samples)
    })

    const load = (mode: Mode) => Effect.gen(function*() {
      const ids = yield* make(loadJobs)
      const waits = yield* Effect.forEach(ids, (id) => Effect.map(wait(id, mode), (w) => ({ id, w, returned: 0 })))
      let next = 0
      yield* Effect.promise(() =>
        Promise.all(clients.map(async (client) => {
          while (next < waits.length) {
            const item = waits[next++]!
            await complete(client, item.id)
            item.returned = performance.now()
          }
        }))
      )
      yield* Effect.forEach(waits, (x) => x.w.done, { discard: true })
      return summarize(waits.map((x) => Math.max(0, x.w.at() - x.returned)))
    })
    return { idle, load }
  })

/**
 * jobwatch: jobs made running, awaited with `CompletionWatcher.waitFor`, completed through `worker`'s
 * `JobsRepo.complete`: this process's own (the in-process fast path) or one on a pool of its own, as another
 * process would (the doorbell and a read).
 */
const jobwatch = (worker: JobsRepo) => Effect.gen(function*() {
  const jobs = yield* Jobs
  const repo = yield* JobsRepo
  const watcher = yield* CompletionWatcher
  const notifications = yield* Notifications

  const running = (n: number) =>
    Effect.gen(function*() {
      const queue = `bench-${Math.random().toString(36).slice(2)}`
      const ids: Array<JobId> = []
      for (let i = 0; i < n; i += 1000) {
        yield* jobs.enqueueBatch(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "bench", queue })))
        const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: 1000, leaseMs: 600_000 })
        yield* Effect.forEach(claimed, (job) => repo.start(job.id), { concurrency: 10, discard: true })
        ids.push(...claimed.map((job) => job.id))
      }
      return ids
    })

  /** Forks a waiter that records when it resolved; answers once its registration has been read. */
  const waitOn = (ids: ReadonlyArray<JobId>) =>
    Effect.gen(function*() {
      const before = (yield* notifications.stats).jobsRead
      const resolvedAt = new Map<JobId, number>()
      const fibers = yield* Effect.forEach(ids, (id) =>
        Effect.fork(watcher.waitFor(id).pipe(Effect.tap(() => Effect.sync(() => resolvedAt.set(id, performance.now()))))))
      for (let i = 0; i < 2000 && (yield* notifications.stats).jobsRead - before < ids.length; i++) yield* sleep(2)
      return { resolvedAt, fibers }
    })

  const idle = Effect.gen(function*() {
    const ids = yield* running(idleSamples)
    const samples: Array<number> = []
    for (const id of ids) {
      const { resolvedAt, fibers } = yield* waitOn([id])
      yield* worker.complete(id, { resultJson: "true" })
      const returned = performance.now()
      yield* Fiber.joinAll(fibers)
      samples.push(Math.max(0, resolvedAt.get(id)! - returned))
    }
    return summarize(samples)
  })

  const load = Effect.gen(function*() {
    const ids = yield* running(loadJobs)
    const { resolvedAt, fibers } = yield* waitOn(ids)
    const returnedAt = new Map<JobId, number>()
    yield* Effect.forEach(
      ids,
      (id) => worker.complete(id, { resultJson: "true" }).pipe(Effect.tap(() => Effect.sync(() => returnedAt.set(id, performance.now())))),
      { concurrency: workers, discard: true }
    )
    yield* Fiber.joinAll(fibers)
    return summarize(ids.map((id) => Math.max(0, resolvedAt.get(id)! - returnedAt.get(id)!)))
  })
  return { idle, load }
})

const line = (label: string, s: Summary) =>
  `  ${label.padEnd(10)} p50 ${ms(s.p50).padStart(9)}  p95 ${ms(s.p95).padStart(9)}  p99 ${ms(s.p99).padStart(9)}  (n=${s.n})`

const verdict = (ours: Summary, base: Summary) => {
  // sub-millisecond floors make ratios noisy: a ratio is judged on at least 0.1 ms of floor
  const r50 = ours.p50 / Math.max(base.p50, 0.1)
  const r99 = ours.p99 / Math.max(base.p99, 0.1)
  return `  ratio      p50 ${r50.toFixed(2)}× (target ≤ 1.3×: ${r50 <= 1.3 ? "met" : "NOT met"})  p99 ${r99.toFixed(2)}× (target ≤ 2×: ${r99 <= 2 ? "met" : "NOT met"})`
}

export const latency = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const raw = yield* floor(url, schema)
    const local = yield* jobwatch(yield* JobsRepo)
    // a worker with its own pool and its own in-process path: as another process, its completions reach the
    // waiters by the doorbell and one read
    const remoteContext = yield* Layer.build(
      JobsRepo.Default.pipe(
        Layer.provide(Layer.merge(
          PgClient.layer({ url: Redacted.make(url), maxConnections: workers }),
          JobWatchConfig.layer({ schema })
        ))
      )
    )
    const remoteRepo = Context.get(remoteContext, JobsRepo)
    const remote = yield* jobwatch(remoteRepo)
    // warm every path up once
    yield* Effect.all([local.idle, remote.idle, raw.idle("callback"), raw.idle("fiber")], { discard: true })
    const floorIdle = yield* raw.idle("callback")
    const fiberIdle = yield* raw.idle("fiber")
    const localIdle = yield* local.idle
    const remoteIdle = yield* remote.idle
    const floorLoad = yield* raw.load("callback")
    const fiberLoad = yield* raw.load("fiber")
    const localLoad = yield* local.load
    const remoteLoad = yield* remote.load
    const report = (title: string, callback: Summary, fiber: Summary, inProcess: Summary, otherPool: Summary) => {
      console.log(title)
      console.log(line("floor cb", callback))
      console.log(line("floor", fiber))
      console.log(line("in-process", inProcess))
      console.log(verdict(inProcess, fiber))
      console.log(line("other pool", otherPool))
      console.log(verdict(otherPool, fiber))
    }
    console.log(`latency: worker's completion call returned → waiter resolved`)
    console.log(`floor: UPDATE … pg_notify, one bare LISTEN connection; "floor cb" resolves in its callback, "floor" wakes`)
    console.log(`a fiber awaiting a Deferred (what any Effect waiter pays); ratios are against "floor"`)
    report("(a) idle, one job at a time", floorIdle, fiberIdle, localIdle, remoteIdle)
    report(`(b) load, ${loadJobs} jobs in flight, ${workers} workers`, floorLoad, fiberLoad, localLoad, remoteLoad)
  }).pipe(Effect.scoped)
