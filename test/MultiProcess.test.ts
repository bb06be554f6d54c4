import { assert, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { uniqueQueue } from "./support/fixtures.js"
import { runScript } from "./support/processes.js"
import * as TestDb from "./support/TestDb.js"

const TestLayer = JobWatch.layer.pipe(Layer.provideMerge(TestDb.layer()))

const jobsCount = 40
const streamsCount = 4

layer(TestLayer, { excludeTestServices: true })("three processes on one database", (it) => {
  it.scoped("waiters and streams here, completions and progress through two others: every waiter resolves, every " +
    "stream sees every version of every job once, in order", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const watcher = yield* CompletionWatcher
      const streams = yield* EventStream
      const { schema } = yield* JobWatchConfig
      const queue = uniqueQueue("three")
      // the streams start before the jobs exist: every event of them comes after their starting position
      const opened = yield* Effect.forEach(
        Array.from({ length: streamsCount }),
        (_, i) => streams.userEvents(i % 2 === 0 ? { owner: "mp", queue } : { owner: "mp" })
      )
      const refs = yield* jobs.enqueueBatch(Array.from({ length: jobsCount }, (_, i) => ({ name: `j${i}`, queue, owner: "mp" })))
      const ids = new Set<string>(refs.map((ref) => ref.id))
      const collecting = yield* Effect.forEach(opened, (stream) => {
        let completed = 0
        return Effect.fork(stream.pipe(
          Stream.filter((item) => ids.has(item.event.jobId)),
          Stream.takeUntil((item) => item.event.status === "completed" && ++completed === jobsCount),
          Stream.runCollect,
          Effect.timeout("90 seconds")
        ))
      })
      const waiters = yield* Effect.forEach(refs, (ref) => Effect.fork(watcher.waitFor(ref.id)))
      const children = yield* Effect.all(
        [0, 1].map(() => runScript("workChild.ts", [TestDb.databaseUrl(), schema, queue], 90_000)),
        { concurrency: "unbounded" }
      )
      for (const child of children) assert.strictEqual(child.code, 0, child.stderr)
      assert.strictEqual(children.reduce((n, child) => n + Number(child.stdout.trim()), 0), jobsCount)
      const outcomes = yield* Effect.forEach(waiters, (fiber) => Fiber.join(fiber).pipe(Effect.timeout("60 seconds")))
      assert.isTrue(outcomes.every((outcome) => outcome.status === "completed"))
      for (const fiber of collecting) {
        const got = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
        const byJob = new Map<string, Array<number>>()
        for (const item of got) byJob.set(item.event.jobId, [...(byJob.get(item.event.jobId) ?? []), item.event.version])
        assert.strictEqual(byJob.size, jobsCount)
        // enqueued, claimed, started, progress 25 and 50, completed: each version once, in order, the last terminal
        for (const [id, seen] of byJob) {
          assert.deepStrictEqual(seen, Array.from({ length: seen.length }, (_, i) => i + 1), `job ${id}`)
          assert.isAtLeast(seen.length, 4, `job ${id}`)
        }
        assert.isTrue(got.filter((item) => item.event.status === "completed").length === jobsCount)
        // cursors strictly increasing: nothing repeated
        assert.strictEqual(new Set(got.map((item) => item.cursor)).size, got.length)
      }
    }), { timeout: 120_000 })
})
