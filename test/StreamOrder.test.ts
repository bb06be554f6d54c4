import { assert, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream } from "effect"
import pg from "pg"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobEvent } from "../src/Domain/JobEvent.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { uniqueQueue } from "./support/fixtures.js"
import { Repos } from "./support/repos.js"
import * as TestDb from "./support/TestDb.js"

const testLayer = Layer.mergeAll(JobWatch.layer, Repos.Default.pipe(Layer.provide(JobWatch.MigrationsLive))).pipe(
  Layer.provideMerge(TestDb.layer({ reaper: false }, { maxConnections: 20 }))
)

const rounds = 50
/** The start of the stream of all events: a cursor before every position. */
const nil = "00000000-0000-0000-0000-000000000000"
const origin = `0.${nil}.0`

/** Asserts that `events` hold each job's versions from `first` on, each once and in order. */
const assertPerJobOrder = (what: string, events: ReadonlyArray<JobEvent>, first = 1) => {
  const next = new Map<string, number>()
  for (const event of events) {
    const expected = next.get(event.jobId) ?? first
    assert.strictEqual(event.version, expected, `${what}: job ${event.jobId} delivered v${event.version} after v${expected - 1}`)
    next.set(event.jobId, expected + 1)
  }
}

layer(testLayer, { excludeTestServices: true, timeout: 120_000 })("per-job order on every stream", (it) => {
  it.scoped(
    `${rounds} rounds of two transactions over crossing sets of jobs, the one with the smaller transaction id writing last: every stream delivers each job's versions once, in order`,
    () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const streams = yield* EventStream
        const watcher = yield* CompletionWatcher
        const repo = yield* Repos
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("order")
        const owner = `order-${queue}`
        const [a, b, c] = yield* jobs.enqueueBatch(["a", "b", "c"].map((name) => ({ name, queue, owner })))
        const ids = [a!.id, b!.id, c!.id]
        const expected = 1 + 1 + rounds + 1 + (1 + 1 + 2 * rounds + 1) + (1 + 1 + rounds + 1)

        // the consumers: a user's stream replaying the log from its start and then live, and each job's own stream
        const userStream = yield* streams.userEvents({ owner }, origin)
        const collecting = yield* Effect.fork(
          userStream.pipe(Stream.take(expected), Stream.runCollect, Effect.timeout("60 seconds"))
        )
        const watching = yield* Effect.forEach(ids, (id) =>
          Effect.fork(watcher.watch(id).pipe(Stream.runCollect, Effect.timeout("60 seconds"))))

        const clients = yield* Effect.acquireRelease(
          Effect.promise(() =>
            Promise.all([0, 1, 2].map(async () => {
              const client = new pg.Client({ connectionString: TestDb.databaseUrl() })
              await client.connect()
              await client.query(`SET search_path TO "${schema}"`)
              return client
            }))
          ),
          (clients) => Effect.promise(() => Promise.all(clients.map((client) => client.end())))
        )
        const [first, second, observer] = clients as [pg.Client, pg.Client, pg.Client]
        const progress = (client: pg.Client, id: string, percent: number) =>
          client.query("SELECT job_progress($1, NULL, $2, NULL, NULL, NULL, now())", [id, percent])
        const [{ pid: firstPid }] = (yield* Effect.promise(() => first.query("SELECT pg_backend_pid() AS pid"))).rows
        /** Resolves once `first` waits on a row lock (observable state, bounded: no sleep decides the order). */
        const untilWaiting = async () => {
          for (let i = 0; i < 10_000; i++) {
            const waiting = await observer.query(
              "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
              [firstPid]
            )
            if (waiting.rowCount === 1) return
          }
          throw new Error("the first transaction never waited on the row lock")
        }

        yield* Effect.promise(() =>
          first.query(`SELECT job_claim('order-worker', $1, NULL, 3, 60000, 10000, NULL, true)`, [[queue]])
        )
        yield* Effect.promise(async () => {
          for (let round = 0; round < rounds; round++) {
            // the first takes its transaction id (by writing a), then the second (a larger id) writes b and c ...
            await first.query("BEGIN")
            await progress(first, ids[0]!, round)
            await second.query("BEGIN")
            await progress(second, ids[1]!, round)
            await progress(second, ids[2]!, round)
            // ... the first waits for b's row lock, and writes b's next version once the second has committed
            const blocked = progress(first, ids[1]!, round + 0.5)
            await untilWaiting()
            await second.query("COMMIT")
            await blocked
            await first.query("COMMIT")
          }
          // one group commit ends them all
          await first.query("SELECT job_complete_many(NULL, $1, $2, $3, $4)", [
            ids,
            ids.map(() => "null"),
            ids.map(() => null),
            ["claimed", "running"]
          ])
        })

        const userEvents = Chunk.toReadonlyArray(yield* Fiber.join(collecting)).map((item) => item.event)
        assertPerJobOrder("the user's stream", userEvents)
        assert.strictEqual(userEvents.length, expected)
        for (const [i, fiber] of watching.entries()) {
          const own = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
          assertPerJobOrder(`job ${"abc"[i]}'s stream`, own)
          assert.strictEqual(own.at(-1)?.status, "completed")
        }

        // the log read from any position answers exactly the rest, in the same order
        const all = yield* repo.streamAfter({ tx: "0", jobId: nil, version: 0 }, { owner }, 1000)
        assertPerJobOrder("the log", all.map((item) => item.event))
        for (let k = 0; k < all.length; k += 7) {
          const rest = yield* repo.streamAfter(all[k]!.position, { owner }, 1000)
          assert.deepStrictEqual(
            rest.map((item) => `${item.event.jobId}.${item.event.version}`),
            all.slice(k + 1).map((item) => `${item.event.jobId}.${item.event.version}`),
            `after position ${k}`
          )
        }
      })
  )
})
