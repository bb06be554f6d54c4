import { assert, layer } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { EventStream } from "../src/Streams/EventStream.js"
import type { PositionedItem } from "../src/Streams/Tail.js"
import * as Tail from "../src/Streams/Tail.js"
import { allRepos, Repos } from "./support/repos.js"
import { uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"

const TestLayer = Layer.mergeAll(
  JobWatch.layer,
  Tail.StreamTail.Default,
  allRepos.pipe(Layer.provide(JobWatch.MigrationsLive))
).pipe(Layer.provideMerge(TestDb.layer()))

/** A job of `owner` on `queue`, then claimed, started and completed: versions 1 to 4. */
const lifecycle = (queue: string, owner: string, name = "tailed") =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const ref = yield* jobs.enqueue({ name, queue, owner })
    yield* repo.claim({ workerId: "w", queues: [queue], limit: 1, leaseMs: 60_000 })
    yield* repo.start(ref.id)
    yield* repo.complete(ref.id, { resultJson: "true" })
    return ref.id
  })

/** The first `n` items of `stream`, within 20 s. */
const take = (stream: Stream.Stream<PositionedItem>, n: number) =>
  stream.pipe(Stream.take(n), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.timeout("20 seconds"))

const key = (item: { readonly event: { readonly jobId: string; readonly version: number } }) =>
  `${item.event.jobId}:${item.event.version}`

layer(TestLayer, { excludeTestServices: true })("the stream tail", (it) => {
  it.scoped("with no subscriber it reads nothing", () =>
    Effect.gen(function*() {
      const tail = yield* Tail.StreamTail
      const watcher = yield* CompletionWatcher
      const before = yield* tail.stats
      assert.strictEqual(before.subscribers, 0)
      const queue = uniqueQueue("idle")
      const waiting = yield* Effect.fork(Effect.flatMap(lifecycle(queue, "idle-owner"), (id) => watcher.waitFor(id)))
      // the waiter resolved: its doorbells reached this process's listener, which the tail also follows
      yield* Fiber.join(waiting).pipe(Effect.timeout("20 seconds"))
      const after = yield* tail.stats
      assert.strictEqual(after.tailReads, before.tailReads)
      assert.strictEqual(after.catchUpReads, before.catchUpReads)
    }))

  it.scoped("200 streams open: a doorbell costs the tail's reads only, the same for all of them", () =>
    Effect.gen(function*() {
      const tail = yield* Tail.StreamTail
      const queue = uniqueQueue("many")
      const n = 200
      const from = yield* tail.now
      const warm = yield* Deferred.make<void>()
      let warmed = 0
      const fibers = yield* Effect.forEach(Array.from({ length: n }), () =>
        Effect.fork(
          tail.follow(from, { queue }).pipe(
            Stream.tap((item) =>
              item.event.version === 4 && ++warmed === n ? Deferred.succeed(warm, undefined) : Effect.void
            ),
            Stream.take(8),
            Stream.runCollect
          )
        ))
      // a first job: every stream is registered and has caught up once it has been seen by all
      yield* lifecycle(queue, "tom")
      yield* Deferred.await(warm).pipe(Effect.timeout("20 seconds"))
      const before = yield* tail.stats
      assert.isAtLeast(before.subscribers, n)
      const second = yield* lifecycle(queue, "tom")
      const all = yield* Effect.forEach(fibers, (fiber) => Fiber.join(fiber).pipe(Effect.timeout("20 seconds")))
      const after = yield* tail.stats
      const expected = [1, 2, 3, 4].map((v) => `${second}:${v}`)
      for (const got of all) assert.deepStrictEqual(Chunk.toReadonlyArray(got).slice(4).map(key), expected)
      // four commits, each read once by the tail (a few more when one was held back), never once per stream
      assert.strictEqual(after.catchUpReads, before.catchUpReads)
      assert.isBelow(after.tailReads - before.tailReads, n / 4)
    }))

  it.scoped("a stream resumed from a cursor replays from the log, then follows the tail without a gap or a repeat", () =>
    Effect.gen(function*() {
      const tail = yield* Tail.StreamTail
      const queue = uniqueQueue("resume")
      const from = yield* tail.now
      // a live stream keeps the tail running throughout
      const pull = yield* Stream.toPull(tail.follow(from, { queue }))
      const live: Array<PositionedItem> = []
      const pullUntil = (n: number) =>
        Effect.gen(function*() {
          while (live.length < n) live.push(...Chunk.toReadonlyArray(yield* pull))
        }).pipe(Effect.timeout("20 seconds"))
      const firstPull = yield* Effect.fork(pullUntil(20))
      const first = yield* Effect.forEach(Array.from({ length: 5 }), () => lifecycle(queue, "ann"))
      yield* Fiber.join(firstPull)
      const cursor = live[6]!.position
      // resumed while more is written: the first reads come from the log, the rest from the tail
      const resumed = yield* Effect.fork(take(tail.follow(cursor, { queue }), 33))
      const more = yield* Effect.forEach(Array.from({ length: 5 }), () => lifecycle(queue, "ann"))
      yield* pullUntil(40)
      const all = live
      const got = yield* Fiber.join(resumed)
      assert.deepStrictEqual(new Set(all.map((item) => item.event.jobId)), new Set([...first, ...more]))
      assert.deepStrictEqual(got.map(key), all.slice(7).map(key))
    }))

  it.scoped("filters: owner, statuses, queue and name, as the SQL filter", () =>
    Effect.gen(function*() {
      const streams = yield* EventStream
      const repo = yield* Repos
      const tail = yield* Tail.StreamTail
      const queue = uniqueQueue("filters")
      const other = uniqueQueue("filters-other")
      const from = yield* tail.now
      const filters = [
        { owner: "una", queue },
        { owner: "una", queue, status: "completed,running" },
        { queue, name: "special" },
        { queue: other }
      ]
      const live = yield* Effect.forEach(filters, (filter) => streams.userEvents(filter))
      const expected = [8, 4, 8, 4]
      const fibers = yield* Effect.forEach(live, (stream, i) =>
        Effect.fork(stream.pipe(Stream.take(expected[i]!), Stream.runCollect, Effect.timeout("20 seconds"))))
      yield* lifecycle(queue, "una")
      yield* lifecycle(queue, "vic", "special")
      yield* lifecycle(other, "vic")
      yield* lifecycle(queue, "una", "special")
      const got = yield* Effect.forEach(fibers, Fiber.join)
      const ownerOnly = yield* repo.streamAfter(from, { owner: "una", queue }, 100)
      assert.deepStrictEqual(Chunk.toReadonlyArray(got[0]!).map(key), ownerOnly.map(key))
      const statuses = yield* repo.streamAfter(from, { owner: "una", queue, statuses: ["completed", "running"] }, 100)
      assert.deepStrictEqual(Chunk.toReadonlyArray(got[1]!).map(key), statuses.map(key))
      assert.isTrue(Chunk.toReadonlyArray(got[1]!).every((e) => ["completed", "running"].includes(e.event.status)))
      const named = yield* repo.streamAfter(from, { queue, name: "special" }, 100)
      assert.deepStrictEqual(Chunk.toReadonlyArray(got[2]!).map(key), named.map(key))
      const elsewhere = yield* repo.streamAfter(from, { queue: other }, 100)
      assert.deepStrictEqual(Chunk.toReadonlyArray(got[3]!).map(key), elsewhere.map(key))
    }))

  it.scoped("a slow consumer's buffer overflows: it reads the log from its last event and rejoins, losing nothing", () =>
    Effect.gen(function*() {
      const small = yield* Tail.make({ bufferLimit: 3 })
      const repo = yield* Repos
      const queue = uniqueQueue("slow")
      const from = yield* small.now
      const pull = yield* Stream.toPull(small.follow(from, { queue }))
      const pullUntil = (n: number) =>
        Effect.gen(function*() {
          const got: Array<PositionedItem> = []
          while (got.length < n) got.push(...Chunk.toReadonlyArray(yield* pull))
          return got
        }).pipe(Effect.timeout("20 seconds"))
      // a fast follower proves the tail has read everything while the slow one was not pulled
      const fast = yield* Effect.fork(take(small.follow(from, { queue }), 24))
      const firstPull = yield* Effect.fork(pullUntil(1))
      yield* Effect.forEach(Array.from({ length: 6 }), () => lifecycle(queue, "sam"))
      const first = yield* Fiber.join(firstPull)
      const fastGot = yield* Fiber.join(fast)
      const rest = yield* pullUntil(24 - first.length)
      const after = yield* small.stats
      const got = [...first, ...rest]
      const log = yield* repo.streamAfter(from, { queue }, 100)
      assert.deepStrictEqual(got.map(key), log.map(key))
      assert.deepStrictEqual(fastGot.map(key), log.map(key))
      assert.isAbove(after.overflows, 0, "its buffer overflowed")
      // and it follows the tail again afterwards
      const next = yield* Effect.fork(pullUntil(4))
      const last = yield* lifecycle(queue, "sam")
      assert.deepStrictEqual((yield* Fiber.join(next)).map(key), [1, 2, 3, 4].map((v) => `${last}:${v}`))
    }))
})
