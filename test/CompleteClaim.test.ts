import { assert, describe, layer } from "@effect/vitest"
import { Clock, Deferred, Effect, Either, Exit, Layer, Ref, Scope } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import type { JobId } from "../src/Domain/JobId.js"
import { awaitConnected, Listener } from "../src/EventLog/Listener.js"
import { Jobs } from "../src/Jobs.js"
import * as Worker from "../src/Workers/Worker.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { eventsOf, testLayer } from "./support/workers.js"

/** Waits on the real clock (the test clock does not move by itself). */
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("timed out after 20 s") }),
    Effect.provide(Layer.setClock(Clock.make()))
  )

const statusesOf = (id: JobId) =>
  Effect.map(eventsOf(id), (events) => events.map((e) => `${e.version}:${e.previousStatus ?? "-"}>${e.status}`))

// A worker's completions and its next claim in one statement (job_complete_claim): the batch's answers are those of
// completeMany, and the jobs claimed are the worker's, started, with their events.
describe("complete and claim in one statement", () => {
  layer(testLayer())((it) => {
    it.effect("completes the worker's jobs and claims, started, the next ones for their slots, events gap-free", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("cc")
        const [a, b, c, d, e] = yield* jobs.enqueueBatch(Array.from({ length: 5 }, (_, i) => ({ name: `n${i}`, queue })))
        const first = yield* workers.claim("w-cc", { queues: [queue], limit: 2, start: true })
        assert.deepStrictEqual(first.map((j) => j.id), [a!.id, b!.id])
        const now = yield* Clock.currentTimeMillis
        const done = yield* workers.completeAndClaim("w-cc", [{ id: a!.id, result: { n: 1 } }, { id: b!.id }], {
          queues: [queue],
          limit: 2,
          heartbeatInterval: "4 seconds"
        })
        assert.deepStrictEqual(done.answers.map(Either.isRight), [true, true])
        assert.deepStrictEqual(done.claimed.map((j) => j.id), [c!.id, d!.id])
        for (const job of done.claimed) {
          assert.strictEqual(job.attempt, 1)
          assert.strictEqual(job.version, 2)
          assert.strictEqual(job.heartbeatSeconds, 4)
          assert.strictEqual(job.leaseExpiresAt.epochMillis, now + 6000)
          const info = yield* jobs.get(job.id)
          assert.strictEqual(info.status, "running")
          assert.strictEqual(info.workerId, "w-cc")
        }
        assert.strictEqual((yield* jobs.get(a!.id)).status, "completed")
        assert.deepStrictEqual((yield* jobs.get(a!.id)).result, { n: 1 })
        assert.deepStrictEqual(yield* statusesOf(a!.id), ["1:->pending", "2:pending>running", "3:running>completed"])
        assert.deepStrictEqual(yield* statusesOf(c!.id), ["1:->pending", "2:pending>running"])
        assert.deepStrictEqual(yield* statusesOf(e!.id), ["1:->pending"])
        // claiming nothing is completeMany
        const last = yield* workers.completeAndClaim("w-cc", [{ id: c!.id }], { queues: [queue], limit: 0 })
        assert.lengthOf(last.claimed, 0)
        assert.strictEqual((yield* jobs.get(e!.id)).status, "pending")
      }))

    it.effect("a batch of mixed outcomes: another worker's job, a finished one, an unknown one are not completed", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("mixed")
        const [mine, theirs, finished, next] = yield* jobs.enqueueBatch(
          Array.from({ length: 4 }, (_, i) => ({ name: `m${i}`, queue }))
        )
        yield* workers.claim("w-mine", { queues: [queue], limit: 1, start: true })
        yield* workers.claim("w-theirs", { queues: [queue], limit: 1, start: true })
        yield* workers.claim("w-mine", { queues: [queue], limit: 1, start: true })
        yield* workers.complete(finished!.id, { workerId: "w-mine" })
        const unknown = "01900000-0000-7000-8000-00000000dead"
        const done = yield* workers.completeAndClaim(
          "w-mine",
          [{ id: mine!.id }, { id: theirs!.id }, { id: finished!.id }, { id: unknown }],
          { queues: [queue], limit: 4 }
        )
        assert.deepStrictEqual(
          done.answers.map((answer) => Either.isRight(answer) ? "ok" : answer.left._tag),
          ["ok", "NotJobHolder", "InvalidTransition", "JobNotFound"]
        )
        assert.strictEqual((yield* jobs.get(theirs!.id)).status, "running")
        assert.strictEqual((yield* jobs.get(theirs!.id)).workerId, "w-theirs")
        assert.deepStrictEqual(done.claimed.map((j) => j.id), [next!.id])
      }))

    it.effect("a job whose lease was lost (released, claimed again by another worker) is not completed", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("lost")
        const ref = yield* jobs.enqueue({ name: "lost", queue })
        yield* workers.claim("w-old", { queues: [queue], limit: 1, start: true })
        yield* workers.release("w-old", [ref.id])
        yield* workers.claim("w-new", { queues: [queue], limit: 1, start: true })
        const done = yield* workers.completeAndClaim("w-old", [{ id: ref.id }], { queues: [queue], limit: 1 })
        assert.strictEqual(Either.isLeft(done.answers[0]!) && done.answers[0].left._tag, "NotJobHolder")
        assert.lengthOf(done.claimed, 0)
        const info = yield* jobs.get(ref.id)
        assert.strictEqual(info.status, "running")
        assert.strictEqual(info.workerId, "w-new")
      }))

    it.effect("a worker the service does not know claims nothing with its completions", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("unknown")
        yield* jobs.enqueue({ name: "waiting", queue })
        const done = yield* workers.completeAndClaim("w-nobody", [{ id: "01900000-0000-7000-8000-00000000beef" }], {
          queues: [queue],
          limit: 1
        })
        assert.lengthOf(done.claimed, 0)
      }))

    it.effect("Worker.run hands the jobs its completions claimed to its handlers, within its concurrency", () =>
      Effect.gen(function*() {
        yield* awaitConnected(yield* Listener)
        const jobs = yield* Jobs
        const watcher = yield* CompletionWatcher
        const local = yield* Worker.WorkerBackend
        const claimedWithCompletions = yield* Ref.make(0)
        const separateClaims = yield* Ref.make(0)
        const counting = Layer.succeed(Worker.WorkerBackend, {
          ...local,
          claim: (workerId, options) =>
            Effect.tap(local.claim(workerId, options), (got) => Ref.update(separateClaims, (n) => n + got.length)),
          completeAndClaim: (workerId, items, claim) =>
            Effect.tap(
              local.completeAndClaim!(workerId, items, claim),
              (done) => Ref.update(claimedWithCompletions, (n) => n + done.claimed.length)
            )
        })
        const queue = uniqueQueue("run")
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 60 }, (_, i) => ({ name: `r${i}`, queue })))
        const inFlight = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        const allDone = yield* Deferred.make<void>()
        const scope = yield* Scope.make()
        yield* Worker.run({
          queues: [queue],
          concurrency: 4,
          claimWithCompletions: true,
          handler: () =>
            Ref.updateAndGet(inFlight, (n) => n + 1).pipe(
              Effect.flatMap((n) => Ref.update(most, (m) => Math.max(m, n))),
              Effect.zipRight(Effect.yieldNow()),
              Effect.ensuring(Ref.update(inFlight, (n) => n - 1))
            )
        }).pipe(Scope.extend(scope), Effect.provide(counting))
        yield* Effect.fork(Effect.zipRight(live(watcher.waitForAll(refs.map((r) => r.id))), Deferred.succeed(allDone, undefined)))
        yield* live(Deferred.await(allDone))
        for (const ref of refs) assert.strictEqual((yield* jobs.get(ref.id)).status, "completed")
        assert.strictEqual((yield* Ref.get(claimedWithCompletions)) + (yield* Ref.get(separateClaims)), 60)
        assert.isAbove(yield* Ref.get(claimedWithCompletions), 0, "no job was claimed with a completion")
        assert.isAtMost(yield* Ref.get(most), 4)
        yield* Scope.close(scope, Exit.void)
      }))
  })
})
