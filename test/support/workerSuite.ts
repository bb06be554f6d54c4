import { assert, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Data, DateTime, Deferred, Duration, Effect, Exit, Ref, Scope } from "effect"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import type { JobWatchConfigInput } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import type { ClaimedJob } from "../../src/Domain/Worker.js"
import { Jobs } from "../../src/Jobs.js"
import * as Worker from "../../src/Workers/Worker.js"
import { uniqueQueue } from "./fixtures.js"
import { eventsOf, eventually } from "./workers.js"
import type { Repos } from "./repos.js"

class Flaky extends Data.TaggedError("Flaky")<{ readonly message: string; readonly code: string }> {}
class Fatal extends Data.TaggedError("Fatal")<{ readonly message: string; readonly retryable: false }> {}

/** The service configuration the suite's environment must have (its heartbeat interval is checked). */
export const suiteConfig = { debounce: "0 millis", heartbeatInterval: "2 seconds" } satisfies JobWatchConfigInput

/** What the suite's tests use: the services to enqueue and watch with, and the worker backend under test. */
export type SuiteServices = Jobs | CompletionWatcher | Repos | Worker.WorkerBackend

const within = <A, E, R>(effect: Effect.Effect<A, E, R>, seconds = 20) =>
  Effect.timeoutFail(effect, {
    duration: Duration.seconds(seconds),
    onTimeout: () => new Error(`not within ${seconds} s`)
  })

const waitFor = (id: JobId) => Effect.flatMap(CompletionWatcher, (watcher) => within(watcher.waitFor(id)))

/** Runs a worker in a scope of its own; answers the scope to stop it with. */
const startWorker = <A, E, R>(options: Worker.RunOptions<A, E, R>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const handle = yield* Worker.run(options).pipe(Scope.extend(scope))
    return { handle, scope }
  })

/**
 * The behaviour every `WorkerBackend` shares (in-process `Worker.local`, `Client.httpWorkerBackend`), on the live
 * clock: `services` provides jobwatch (configured with `suiteConfig`) and the backend under test.
 */
export const workerBackendSuite = <ROut, E>(name: string, services: Layer.Layer<ROut | SuiteServices, E>) =>
  layer(services, { excludeTestServices: true, timeout: 60_000 })(name, (it) => {
    it.effect("completes jobs with the handler's value; typed failures and defects fail the attempt", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("run")
        const worker = yield* startWorker({
          queues: [queue],
          concurrency: 4,
          handler: (job: ClaimedJob): Effect.Effect<{ doubled: number }, Flaky | Fatal> => {
            const n = (job.payload as { n: number }).n
            if (n === 1) return Effect.fail(new Flaky({ message: "try later", code: "busy" }))
            if (n === 2) return Effect.fail(new Fatal({ message: "bad input", retryable: false }))
            if (n === 3) return Effect.die(new Error("kaboom"))
            return Effect.succeed({ doubled: n * 2 })
          }
        })
        const refs = yield* jobs.enqueueBatch([0, 1, 2, 3, 21].map((n) => ({ name: `n${n}`, queue, payload: { n } })))
        const outcomes = yield* Effect.forEach(refs, (ref) => waitFor(ref.id))
        assert.deepStrictEqual(outcomes.map((o) => o.status), ["completed", "failed", "failed", "failed", "completed"])
        assert.deepStrictEqual(outcomes[0]!.result, { doubled: 0 })
        assert.deepStrictEqual(outcomes[4]!.result, { doubled: 42 })
        assert.deepStrictEqual(outcomes[1]!.error, { code: "busy", message: "try later" })
        assert.deepStrictEqual(outcomes[2]!.error, { code: "Fatal", message: "bad input" })
        assert.strictEqual(outcomes[3]!.error?.code, "defect")
        assert.include(outcomes[3]!.error?.message, "kaboom")
        // claimed and started at once
        const events = yield* eventsOf(refs[0]!.id)
        assert.deepStrictEqual(events.map((e) => e.status), ["pending", "running", "completed"])
        yield* eventually(worker.handle.stats, (s) => s.completed === 2 && s.failed === 3 && s.canceled === 0)
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("a retryable failure is retried by the next claim after its backoff", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("again")
        const attempts = yield* Ref.make(0)
        const worker = yield* startWorker({
          queues: [queue],
          handler: () =>
            Ref.updateAndGet(attempts, (n) => n + 1).pipe(
              Effect.flatMap((n) =>
                n < 3 ? Effect.fail(new Flaky({ message: `attempt ${n}`, code: "busy" })) : Effect.succeed(n)
              )
            )
        })
        const ref = yield* jobs.enqueue({ name: "flaky", queue, maxAttempts: 3, backoff: { delay: 0 } })
        const outcome = yield* waitFor(ref.id)
        assert.strictEqual(outcome.status, "completed")
        assert.strictEqual(outcome.result, 3)
        const failures = (yield* eventsOf(ref.id)).filter((e) => e.error !== null)
          .map((e) => [e.attempt, e.error?.message])
        assert.deepStrictEqual(failures, [[1, "attempt 1"], [2, "attempt 2"]])
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("a cancel request interrupts the running handler; the job ends canceled, its progress kept", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("cancel")
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          handler: (_job: ClaimedJob, ctx: Worker.WorkerContext) =>
            ctx.progress(5).pipe(
              Effect.zipRight(Deferred.succeed(started, undefined)),
              Effect.zipRight(Effect.never),
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
            )
        })
        const ref = yield* jobs.enqueue({ name: "long", queue })
        yield* within(Deferred.await(started))
        const requested = yield* jobs.cancel(ref.id)
        assert.isTrue(requested.cancelRequested)
        // by the backend's cancel channel, or at the latest by the next heartbeat (2 s)
        yield* within(Deferred.await(interrupted))
        const outcome = yield* waitFor(ref.id)
        assert.strictEqual(outcome.status, "canceled")
        assert.strictEqual((yield* jobs.get(ref.id)).progress.percent, 5)
        // counted once the worker's own call returned (the waiter may hear of the change first)
        yield* eventually(worker.handle.stats, (s) => s.canceled === 1 && s.completed === 0 && s.failed === 0)
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("never runs more than `concurrency` handlers at once", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("conc")
        const active = yield* Ref.make(0)
        const peak = yield* Ref.make(0)
        const worker = yield* startWorker({
          queues: [queue],
          concurrency: 3,
          handler: () =>
            Effect.acquireUseRelease(
              Ref.updateAndGet(active, (n) => n + 1).pipe(Effect.tap((n) => Ref.update(peak, (p) => Math.max(p, n)))),
              // a pause, so that handlers overlap
              () => Effect.sleep("20 millis"),
              () => Ref.update(active, (n) => n - 1)
            )
        })
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 30 }, (_, i) => ({ name: `c${i}`, queue })))
        yield* Effect.forEach(refs, (ref) => waitFor(ref.id), { discard: true })
        assert.strictEqual(yield* Ref.get(peak), 3)
        yield* Scope.close(worker.scope, Exit.void)
      }))

    it.effect("without heartbeatInterval it leases and heartbeats by the service's JOBWATCH_HEARTBEAT_INTERVAL", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("hbdefault")
        const started = yield* Deferred.make<void>()
        const worker = yield* startWorker({
          queues: [queue],
          shutdownGrace: "0 millis",
          handler: () => Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never))
        })
        const ref = yield* jobs.enqueue({ name: "long", queue })
        yield* within(Deferred.await(started))
        type Leased = { readonly leaseExpiresAt: DateTime.Utc | null; readonly claimedAt: DateTime.Utc | null }
        const leased = (info: Leased) =>
          DateTime.toEpochMillis(info.leaseExpiresAt!) - DateTime.toEpochMillis(info.claimedAt!)
        // 1.5 × the service's 2 s, not 1.5 × the default 10 s
        assert.strictEqual(leased(yield* jobs.get(ref.id)), 3000)
        // its heartbeat comes about 2 s after the claim, and extends the lease to 3 s from then: before it lapses
        const extended = yield* eventually(Effect.map(jobs.get(ref.id), leased), (ms) => ms > 3000, 10)
        assert.isAtLeast(extended, 4000)
        yield* Scope.close(worker.scope, Exit.void)
      }))
  })
