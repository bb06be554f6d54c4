import { assert, describe, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Either, Layer } from "effect"
import type { JobEvent } from "../src/Domain/JobEvent.js"
import { JobWatchConfig } from "../src/Config.js"
import { allStatuses, canTransition } from "../src/Domain/JobStatus.js"
import * as JobWatch from "../src/JobWatch.js"
import { Repos } from "./support/repos.js"
import { LocalEvents } from "../src/EventLog/LocalEvents.js"
import { jobIn, uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"

// LocalEvents is the very instance Repos publishes to (layers are shared by reference within one build)
const TestLayer = Layer.mergeAll(
  JobWatch.layer,
  Layer.merge(Repos.Default, LocalEvents.Default).pipe(Layer.provide(JobWatch.MigrationsLive))
).pipe(Layer.provideMerge(TestDb.layer()))

const eventsOf = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    return yield* sql<{ version: number; status: string; previous_status: string | null; type: string }>`
      SELECT version, status, previous_status, type FROM ${sql(`${schema}.job_events`)}
      WHERE job_id = ${id} ORDER BY version`
  })

layer(TestLayer, { excludeTestServices: true })("JobsRepo transitions", (it) => {
  describe("the transition table, all 8 × 8 pairs", () => {
    for (const from of allStatuses) {
      for (const to of allStatuses) {
        const allowed = canTransition(from, to)
        it.effect(`${from} → ${to} is ${allowed ? "allowed" : "refused"}`, () =>
          Effect.gen(function*() {
            const repo = yield* Repos
            const before = yield* jobIn(from)
            const result = yield* Effect.either(repo.transitionOrInvalid({ id: before.id, to }))
            const events = yield* eventsOf(before.id)
            const after = yield* repo.get(before.id)
            if (allowed) {
              assert.isTrue(Either.isRight(result))
              assert.strictEqual(after.status, to)
              assert.strictEqual(after.version, before.version + 1)
              const last = events[events.length - 1]!
              assert.deepStrictEqual([last.version, last.status, last.previous_status], [after.version, to, from])
            } else {
              assert.isTrue(Either.isLeft(result))
              if (Either.isLeft(result)) {
                assert.strictEqual(result.left._tag, "InvalidTransition")
                if (result.left._tag === "InvalidTransition") {
                  assert.deepStrictEqual([result.left.from, result.left.to], [from, to])
                }
              }
              // nothing written
              assert.strictEqual(after.version, before.version)
              assert.strictEqual(after.status, from)
              assert.strictEqual(events.length, before.version)
            }
          }))
      }
    }
  })

  it.effect("an unknown id is JobNotFound", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const error = yield* Effect.flip(repo.transitionOrInvalid({ id: "0190f2b4-0000-7000-8000-000000000000" as never, to: "running" }))
      assert.strictEqual(error._tag, "JobNotFound")
    }))

  it.effect("20 fibers racing on one job leave versions 1..n, contiguous, each once", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const job = yield* jobIn("pending")
      // each fiber flips the job between pending and claimed; only moves the table allows succeed
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) =>
          Effect.forEach(Array.from({ length: 10 }, (_, k) => k), (k) =>
            repo.transitionOrInvalid({ id: job.id, to: (i + k) % 2 === 0 ? "claimed" : "pending" }).pipe(
              Effect.as(1),
              Effect.catchTag("InvalidTransition", () => Effect.succeed(0))
            )),
        { concurrency: "unbounded" }
      )
      const successes = outcomes.flat().reduce((a, b) => a + b, 0)
      const events = yield* eventsOf(job.id)
      const after = yield* repo.get(job.id)
      assert.isAbove(successes, 1)
      assert.strictEqual(after.version, 1 + successes)
      assert.deepStrictEqual(events.map((e) => e.version), Array.from({ length: 1 + successes }, (_, i) => i + 1))
      // every event follows the previous one
      for (let i = 1; i < events.length; i++) assert.strictEqual(events[i]!.previous_status, events[i - 1]!.status)
    }))

  it.effect("a lost race answers InvalidTransition with the status actually found", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const job = yield* jobIn("running")
      const results = yield* Effect.all(
        [
          Effect.either(repo.complete(job.id, { resultJson: "1" })),
          Effect.either(repo.fail(job.id, { code: "x", error: "y" }))
        ],
        { concurrency: 2 }
      )
      const wins = results.filter(Either.isRight)
      const losses = results.filter(Either.isLeft).map((r) => r.left)
      assert.strictEqual(wins.length, 1)
      assert.strictEqual(losses.length, 1)
      const winner = wins[0]!.right.status
      const loss = losses[0]!
      assert.strictEqual(loss._tag, "InvalidTransition")
      if (loss._tag === "InvalidTransition") assert.strictEqual(loss.from, winner)
    }))

  it.effect("claim takes priority first, then FIFO, and sets a lease and the attempt", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const queue = uniqueQueue()
      const low1 = yield* jobIn("pending", { queue })
      const high = yield* jobIn("pending", { queue })
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE ${sql(`${(yield* JobWatchConfig).schema}.jobs`)} SET priority = 5 WHERE id = ${high.id}`
      const low2 = yield* jobIn("pending", { queue })
      const claimed = yield* repo.claim({ workerId: "w9", queues: [queue], limit: 10, leaseMs: 30_000 })
      assert.deepStrictEqual(claimed.map((j) => j.id), [high.id, low1.id, low2.id])
      for (const job of claimed) {
        const stored = yield* repo.get(job.id)
        assert.strictEqual(stored.status, "claimed")
        assert.strictEqual(stored.workerId, "w9")
        assert.strictEqual(job.attempt, 1)
        assert.isNotNull(job.leaseExpiresAt)
        assert.deepStrictEqual(job.leaseExpiresAt, stored.leaseExpiresAt)
        assert.strictEqual(job.version, stored.version)
      }
      assert.lengthOf(yield* repo.claim({ workerId: "w9", queues: [queue], limit: 10, leaseMs: 30_000 }), 0)
    }))

  it.effect("concurrent claimers never take the same job (SKIP LOCKED)", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const queue = uniqueQueue()
      yield* Effect.forEach(Array.from({ length: 200 }, () => 0), () => jobIn("pending", { queue }), { concurrency: 8 })
      const claimAll = (worker: string) =>
        Effect.gen(function*() {
          const mine: Array<string> = []
          while (true) {
            const batch = yield* repo.claim({ workerId: worker, queues: [queue], limit: 7, leaseMs: 30_000 })
            if (batch.length === 0) return mine
            mine.push(...batch.map((j) => j.id))
          }
        })
      const all = yield* Effect.all(["a", "b", "c", "d"].map(claimAll), { concurrency: "unbounded" })
      const ids = all.flat()
      assert.strictEqual(ids.length, 200)
      assert.strictEqual(new Set(ids).size, 200)
    }))

  it.effect("cancel: pending is canceled at once, running gets cancelRequested, terminal is refused", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const pending = yield* jobIn("pending")
      assert.strictEqual((yield* repo.cancel(pending.id)).status, "canceled")
      const running = yield* jobIn("running")
      const requested = yield* repo.cancel(running.id)
      assert.strictEqual(requested.status, "running")
      assert.isTrue(requested.cancelRequested)
      assert.strictEqual(requested.version, running.version + 1)
      // asking again changes nothing
      assert.strictEqual((yield* repo.cancel(running.id)).version, requested.version)
      const events = yield* eventsOf(running.id)
      assert.strictEqual(events[events.length - 1]!.type, "job.cancel_requested")
      const done = yield* jobIn("completed")
      const error = yield* Effect.flip(repo.cancel(done.id))
      assert.strictEqual(error._tag, "InvalidTransition")
    }))

  it.effect("delete: only before a worker holds the job", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      assert.strictEqual((yield* repo.remove((yield* jobIn("scheduled")).id)).status, "deleted")
      const held = yield* jobIn("claimed")
      const error = yield* Effect.flip(repo.remove(held.id))
      assert.strictEqual(error._tag, "InvalidTransition")
      if (error._tag === "InvalidTransition") assert.deepStrictEqual([error.from, error.to], ["claimed", "deleted"])
    }))

  it.effect("retry sends the job back to scheduled with the attempt's error, and a claim counts attempts", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const queue = uniqueQueue()
      const job = yield* jobIn("claimed", { queue })
      const retried = yield* repo.retry(job.id, { delayMs: 0, code: "flaky", error: "try again" })
      assert.strictEqual(retried.status, "pending")
      assert.isNull(retried.workerId)
      assert.deepStrictEqual(retried.error, { code: "flaky", message: "try again" })
      const [again] = yield* repo.claim({ workerId: "w2", queues: [queue], limit: 1, leaseMs: 1000 })
      assert.strictEqual(again!.attempt, 2)
      const later = yield* repo.retry(job.id, { delayMs: 60_000, code: null, error: "later" })
      assert.strictEqual(later.status, "scheduled")
    }))

  it.effect("events carry the job's history in order", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const job = yield* jobIn("completed")
      const events = yield* repo.eventsOf(job.id, 0)
      assert.deepStrictEqual(events.map((e) => e.status), ["pending", "claimed", "running", "completed"])
      assert.deepStrictEqual(events[3]!.result, { ok: true })
      assert.deepStrictEqual((yield* repo.eventsOf(job.id, 2)).map((e) => e.version), [3, 4])
    }))

  it.scoped("each change answers the job and hands over the event exactly as a read of them gives them", () =>
    Effect.gen(function*() {
      const repo = yield* Repos
      const published: Array<JobEvent> = []
      yield* (yield* LocalEvents).subscribe((event) => published.push(event))
      const { id } = yield* jobIn("claimed")
      const changes = [
        () => repo.start(id, { message: "off we go" }),
        () => repo.cancel(id, { message: "stop, please" }),
        () => repo.retry(id, { delayMs: 60_000, code: "flaky", error: "try again" }),
        () => repo.remove(id, { message: "gone" })
      ]
      for (const change of changes) {
        const answered = yield* change()
        assert.deepStrictEqual(answered, yield* repo.get(id))
      }
      const { id: other } = yield* jobIn("running")
      const completed = yield* repo.complete(other, { resultJson: JSON.stringify({ n: [1, 2] }), message: "done" })
      assert.deepStrictEqual(completed, yield* repo.get(other))
      const { id: third } = yield* jobIn("running")
      const failed = yield* repo.fail(third, { code: "E42", error: "broke", message: null })
      assert.deepStrictEqual(failed, yield* repo.get(third))
      const { id: fourth } = yield* jobIn("claimed")
      const [answer] = yield* repo.completeMany("w1", [{ id: fourth, resultJson: `{"b": 1, "a": [true]}`, message: "many" }])
      assert.isTrue(answer !== undefined && Either.isRight(answer))
      // every event handed over in process is the one stored, result and error included
      const ids = [id, other, third, fourth]
      const stored = (yield* Effect.forEach(ids, (job) => repo.eventsOf(job, 0))).flat()
      const mine = published.filter((event) => ids.includes(event.jobId))
      assert.isAtLeast(mine.length, 9)
      assert.deepStrictEqual(mine.find((event) => event.jobId === fourth)?.result, { a: [true], b: 1 })
      for (const event of mine) {
        assert.deepStrictEqual(event, stored.find((e) => e.jobId === event.jobId && e.version === event.version))
      }
    }))
})
