import { Cause, Deferred, Duration, Effect, Either, Exit, Fiber, FiberId, FiberMap, Layer, Option, Queue, Ref } from "effect"
import type { Scope } from "effect"
import type { ClaimedJob, ProgressAck } from "../Domain/Worker.js"
import type { JobId } from "../Domain/JobId.js"
import { Propagation } from "../Domain/TraceContext.js"
import { makeStreak } from "../internal/retry.js"
import type { ProgressReport } from "./ProgressReporter.js"
import type { Ending, WorkerRefused } from "./runtime.js"
import { defaultWorkerId, describeFailure, groupCommit, heartbeatLoop, isRefusal, processSpan } from "./runtime.js"
import type { WorkerProtocolError } from "./WorkerBackend.js"
import { WorkerBackend } from "./WorkerBackend.js"

// `Worker.run`, the worker loop, over a `WorkerBackend`: no server code, so that it runs wherever the backend can
// reach the service (`jobwatch/client`'s HTTP backend in another process, `Worker.local` in this one).

export * from "./WorkerBackend.js"
export type { WorkerRefused } from "./runtime.js"
export { defaultWorkerId } from "./runtime.js"

/** What a handler gets besides its job. */
export interface WorkerContext {
  readonly job: ClaimedJob
  readonly workerId: string
  /** Reports progress (throttled by the service; a regression fails with `ProgressRegression`). */
  readonly progress: (
    percent: number,
    options?: Omit<ProgressReport, "percent">
  ) => Effect.Effect<ProgressAck, WorkerProtocolError>
}

export interface RunOptions<A, E, R> {
  /** Default: host name, process id and a random suffix, under the backend's `workerNamespace` (see `defaultWorkerId`). */
  readonly workerId?: string | undefined
  readonly queues: ReadonlyArray<string>
  readonly names?: ReadonlyArray<string> | undefined
  /** Jobs run at once; default 1. */
  readonly concurrency?: number | undefined
  /**
   * Runs one job; its value is the job's result. A failure fails the attempt (retried while attempts remain):
   * its `code` (or `_tag`) and `message` are recorded, and `retryable: false` on it ends the job at once. A defect
   * fails the attempt with code `defect`. The fiber is interrupted when the job's cancellation is requested (the
   * job then ends `canceled`) or its timeout passes (it fails with code `timeout`).
   */
  readonly handler: (job: ClaimedJob, ctx: WorkerContext) => Effect.Effect<A, E, R>
  /**
   * The leases of this worker's jobs last 1.5 × this. Default: the service's (`JOBWATCH_HEARTBEAT_INTERVAL`), which
   * its claims' answers carry.
   */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** On shutdown, how long running handlers may take to finish before they are interrupted and released; 10 s. */
  readonly shutdownGrace?: Duration.DurationInput | undefined
  /** How long one claim waits for work (woken by the service when a job is ready); 30 s. */
  readonly claimWait?: Duration.DurationInput | undefined
  /**
   * The cap of the backoff of failing claims and heartbeats (exponential from 100 ms, jittered); default the
   * backend's (`JOBWATCH_RETRY_MAX_BACKOFF` in-process), else 10 s.
   */
  readonly retryMaxBackoff?: Duration.DurationInput | undefined
  /**
   * Claims the next jobs in the statement that writes a batch of completions (the backend's `completeAndClaim`),
   * one round trip per batch instead of two. Off by default: in the side-by-side harness's lifecycle scenario it
   * runs at about 2,100 jobs/s against 2,700 with separate claims (a slot freed by a success waits for the batch's
   * write before it gets a job; a separate claim overlaps that write). (It was 180 against 910 while the
   * completions' lookups scanned the whole table; see sql/functions/job_complete_many.sql.)
   */
  readonly claimWithCompletions?: boolean | undefined
}

/** A job a worker holds: whether its cancellation was requested, and its handler's fiber while that runs. */
interface Held {
  canceled: boolean
  handler: Fiber.RuntimeFiber<Ending> | undefined
}

/** A running worker. */
export interface WorkerHandle {
  readonly workerId: string
  /** Jobs its handlers run now. */
  readonly running: Effect.Effect<ReadonlyArray<JobId>>
  readonly stats: Effect.Effect<{ readonly completed: number; readonly failed: number; readonly canceled: number }>
  /**
   * Waits until the worker has stopped: succeeds when its scope closed, fails when it stopped by itself because the
   * service refused its credentials (an expired or revoked token), after which it claims and heartbeats no more.
   */
  readonly await: Effect.Effect<void, WorkerRefused>
}

/**
 * Runs a worker until the scope closes: it claims jobs of `queues` (waiting for work without polling), runs
 * `handler` on each with at most `concurrency` at once, heartbeats, and ends every job with the handler's outcome.
 * Closing the scope stops claiming, lets running handlers finish within `shutdownGrace`, then interrupts the rest
 * and releases their jobs back to the queue (their attempt not used up) for another worker. Failing claims and
 * heartbeats back off (logging a streak's first failure, a line per cap, the recovery). Credentials the service
 * refuses (401, 403) are not retried: `run` fails with the error when refused at once, and a worker refused later
 * stops (its handlers interrupted; their leases lapse and the reaper hands the jobs on) with `await` failing.
 */
export const run = <A, E, R>(
  options: RunOptions<A, E, R>
): Effect.Effect<WorkerHandle, WorkerRefused, WorkerBackend | Scope.Scope | R> =>
  Effect.gen(function*() {
    const backend = yield* WorkerBackend
    const workerId = options.workerId ?? defaultWorkerId(backend.workerNamespace)
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1))
    const explicitHeartbeat = options.heartbeatInterval === undefined
      ? undefined
      : Duration.decode(options.heartbeatInterval)
    /** The heartbeat interval: the option's, or the service's as its claims' answers say. */
    let heartbeatInterval = explicitHeartbeat ?? Duration.seconds(10)
    const heartbeatKnown = yield* Deferred.make<void>()
    if (explicitHeartbeat !== undefined) yield* Deferred.succeed(heartbeatKnown, undefined)
    const retryCap = options.retryMaxBackoff ?? backend.retryMaxBackoff ?? Duration.seconds(10)
    // a span per job only where spans are exported (an unexported one cost ~15 µs a job for no one)
    const traced = yield* Propagation
    const grace = Duration.decode(options.shutdownGrace ?? "10 seconds")
    const claimWait = Duration.decode(options.claimWait ?? "30 seconds")
    /** The jobs this worker holds (running, or their outcome being written), with their cancel requests. */
    const running = new Map<JobId, Held>()
    /** Handlers running: what `concurrency` bounds. */
    let busy = 0
    const stats = yield* Ref.make({ completed: 0, failed: 0, canceled: 0 })
    const freed = yield* Queue.sliding<void>(1)
    const handlers = yield* FiberMap.make<JobId>()
    /** Failed once the service refuses the worker's credentials (internal), then once the worker has stopped. */
    const refused = yield* Deferred.make<never, WorkerRefused>()
    const stopped = yield* Deferred.make<void, WorkerRefused>()
    const refuse = (error: WorkerRefused) =>
      Effect.suspend(() => {
        claimsOpen = false
        return Deferred.fail(refused, error).pipe(Effect.asVoid)
      })

    // refused credentials fail the run at once (a heartbeat changes nothing for a worker the service does not know)
    const probe = yield* Effect.either(backend.heartbeat(workerId))
    if (Either.isLeft(probe) && isRefusal(probe.left)) return yield* Effect.fail(probe.left)

    const requestCancel = (ids: ReadonlyArray<JobId> | "*") => {
      if (ids === "*") return // too many to list here: the next heartbeat names them
      for (const id of ids) {
        const held = running.get(id)
        if (held === undefined || held.canceled) continue
        held.canceled = true
        // a handler not started yet sees the request when it starts; one that has returned is not interrupted
        held.handler?.unsafeInterruptAsFork(FiberId.none)
      }
    }

    const warn = (what: string) => (error: WorkerProtocolError) =>
      Effect.logWarning(`worker ${workerId}: ${what}: ${error.message}`)

    /** Whether the worker claims more: not once it stops (a shutdown, refused credentials). */
    let claimsOpen = true

    /** Makes claimed jobs this worker's (so that a shutdown releases them) and starts their handlers. */
    const register = (jobs: ReadonlyArray<ClaimedJob>) =>
      Effect.sync(() => {
        for (const job of jobs) {
          running.set(job.id, { canceled: false, handler: undefined })
          busy++
        }
      })
    const startHandlers = (jobs: ReadonlyArray<ClaimedJob>): Effect.Effect<void, never, R> =>
      Effect.forEach(jobs, (job) => FiberMap.run(handlers, job.id, runJob(job, running.get(job.id)!)), {
        discard: true
      })

    // the completions of handlers that succeeded claim the next jobs for their slots in the same round trip; jobs
    // such a claim answers once the worker stopped claiming go back to the queue at once
    const { claimsNext, complete, writer: completer } = yield* groupCommit(backend, workerId, !options.claimWithCompletions ? undefined : {
      options: () =>
        claimsOpen ? { queues: options.queues, names: options.names, heartbeatInterval: explicitHeartbeat } : undefined,
      take: (jobs): Effect.Effect<void, never, R> => {
        if (jobs.length === 0) return Effect.void
        if (claimsOpen) return Effect.zipRight(register(jobs), startHandlers(jobs))
        return backend.release(workerId, jobs.map((job) => job.id)).pipe(
          Effect.catchAll(warn("releasing jobs claimed while stopping")),
          Effect.asVoid
        )
      }
    })

    /**
     * Ends the job as the handler's outcome says. `freeSlot` frees the handler's slot: a success's completion is
     * queued for the writer first, so that its statement goes out before the claim the free slot wakes.
     */
    const settle = (job: ClaimedJob, ending: Ending, freeSlot: Effect.Effect<void>) => {
      if (!(ending._tag === "Done" && Exit.isSuccess(ending.exit))) return Effect.zipRight(freeSlot, end(job, ending))
      if (claimsNext) return end(job, ending)
      return complete(job.id, ending.exit.value ?? null, false, freeSlot).pipe(
        Effect.zipRight(Ref.update(stats, (s) => ({ ...s, completed: s.completed + 1 })))
      )
    }
    const end = (job: ClaimedJob, ending: Ending) => {
      const scope = { workerId }
      switch (ending._tag) {
        case "Canceled":
          return backend.canceled(job.id, { ...scope, message: "canceled on request; the handler was interrupted" })
            .pipe(Effect.zipRight(Ref.update(stats, (s) => ({ ...s, canceled: s.canceled + 1 }))))
        case "TimedOut":
          return backend.fail(job.id, {
            ...scope,
            code: "timeout",
            error: `attempt ${job.attempt} ran longer than its timeout of ${ending.seconds} s`,
            retryable: true
          }).pipe(Effect.zipRight(Ref.update(stats, (s) => ({ ...s, failed: s.failed + 1 }))))
        case "Done": {
          if (Exit.isSuccess(ending.exit)) {
            return complete(job.id, ending.exit.value ?? null, claimsNext).pipe(
              Effect.zipRight(Ref.update(stats, (s) => ({ ...s, completed: s.completed + 1 })))
            )
          }
          const cause = ending.exit.cause
          const failure = Cause.failureOption(cause)
          const described = Option.isSome(failure)
            ? describeFailure(failure.value)
            : { code: "defect", message: Cause.pretty(cause).split("\n")[0] ?? "defect", retryable: true }
          return backend.fail(job.id, { ...scope, ...described, error: described.message }).pipe(
            Effect.zipRight(Ref.update(stats, (s) => ({ ...s, failed: s.failed + 1 })))
          )
        }
      }
    }

    /**
     * Runs one job: the handler in a fiber of its own, which a cancel request interrupts (one fork a job, where a
     * race of the handler against a cancel signal took two and a signal).
     */
    const runJob = (job: ClaimedJob, held: Held) => {
      let slotHeld = true
      const freeSlot = Effect.suspend(() => {
        if (!slotHeld) return Effect.void
        slotHeld = false
        busy--
        return Queue.offer(freed, undefined)
      })
      return Effect.gen(function*() {
        const ctx: WorkerContext = {
          job,
          workerId,
          progress: (percent, report) => backend.progress(job.id, { ...report, percent }, { workerId })
        }
        const run = options.handler(job, ctx)
        const handled = (traced ? Effect.withSpan(run, "Worker.process", processSpan(job, workerId)) : run).pipe(
          Effect.exit,
          Effect.map((exit): Ending => ({ _tag: "Done", exit }))
        )
        const timed = job.timeoutSeconds === null ? handled : handled.pipe(
          Effect.timeoutTo({
            duration: Duration.seconds(job.timeoutSeconds),
            onSuccess: (ending): Ending => ending,
            onTimeout: (): Ending => ({ _tag: "TimedOut", seconds: job.timeoutSeconds! })
          })
        )
        let ending: Ending = { _tag: "Canceled" }
        if (!held.canceled) {
          // a child fiber: interrupted with this one (a shutdown past its grace, refused credentials)
          const handler = yield* Effect.fork(timed)
          held.handler = handler
          const exit = yield* Fiber.await(handler)
          held.handler = undefined
          if (Exit.isSuccess(exit)) ending = exit.value
          else if (!(held.canceled && Exit.isInterrupted(exit))) return yield* exit
        }
        // the handler's slot is free: the next claim overlaps with the write of this job's outcome, unless that write
        // claims for the slot itself (a success, when the backend claims with completions). The outcome is recorded
        // even if shutdown interrupts meanwhile
        yield* Effect.uninterruptible(
          settle(job, ending, freeSlot).pipe(
            Effect.catchAll((error) => isRefusal(error) ? refuse(error) : warn(`ending job ${job.id}`)(error))
          )
        )
      }).pipe(
        Effect.ensuring(Effect.suspend(() => {
          running.delete(job.id)
          // wakes the claim loop also when it waits for held jobs, not handlers, to drop below the bound
          return slotHeld ? freeSlot : Queue.offer(freed, undefined)
        }))
      )
    }

    const claimLoop = Effect.gen(function*() {
      const streak = yield* makeStreak(`worker ${workerId}: claiming`, { cap: retryCap })
      while (true) {
        // at most `concurrency` handlers, and at most as many jobs again whose outcome is being written
        const free = Math.min(concurrency - busy, 2 * concurrency - running.size)
        if (free <= 0) {
          yield* Queue.take(freed)
          continue
        }
        // the jobs a claim answers are this worker's from that moment: the answer is registered (so that a shutdown
        // releases its jobs) before an interruption can come between. The backends wait for work interruptibly
        // (see `WorkerBackendShape.claim`), so a shutdown does not wait for the claim's wait to end
        const claimed = yield* Effect.uninterruptible(
          Effect.tap(
            Effect.either(backend.claim(workerId, {
              queues: options.queues,
              names: options.names,
              limit: free,
              wait: claimWait,
              heartbeatInterval: explicitHeartbeat,
              start: true
            })),
            (answer) => register(Either.getOrElse(answer, () => []))
          )
        )
        if (Either.isLeft(claimed)) {
          if (isRefusal(claimed.left)) return yield* refuse(claimed.left)
          yield* Effect.sleep(yield* streak.failed(claimed.left))
          continue
        }
        if (streak.failures() > 0) yield* streak.succeeded
        const jobs = claimed.right
        const granted = jobs[0]?.heartbeatSeconds
        if (explicitHeartbeat === undefined && jobs.length > 0) {
          heartbeatInterval = granted === undefined ? heartbeatInterval : Duration.seconds(granted)
          yield* Deferred.succeed(heartbeatKnown, undefined)
        }
        yield* startHandlers(jobs)
      }
    })

    // forked before the shutdown finalizer is added: it outlives the handlers that wait on it
    const completing = yield* Effect.forkScoped(completer)
    if (backend.onCancelRequested !== undefined) yield* backend.onCancelRequested(requestCancel)
    const heartbeats = yield* Effect.forkScoped(heartbeatLoop({
      backend,
      workerId,
      interval: () => heartbeatInterval,
      known: Deferred.await(heartbeatKnown),
      cap: retryCap,
      idle: () => running.size === 0,
      onCancelRequested: requestCancel,
      onRefused: refuse
    }))
    const claiming = yield* Effect.forkScoped(claimLoop)
    // refused: stop claiming, heartbeating and running handlers (their outcomes could not be written), then say so
    yield* Effect.forkScoped(
      Effect.catchAll(Deferred.await(refused), (error) =>
        Effect.gen(function*() {
          yield* Effect.logError(
            `worker ${workerId} stops: the service refused its credentials (${error._tag}: ${error.message})`
          )
          yield* Fiber.interrupt(claiming)
          yield* Fiber.interrupt(heartbeats)
          yield* FiberMap.clear(handlers)
          yield* Deferred.fail(stopped, error)
        }))
    )

    // shutdown: stop claiming, give running handlers the grace period, then interrupt and release the rest
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        claimsOpen = false
        yield* Fiber.interrupt(claiming)
        const fibers = [...running.keys()].flatMap((id) => Option.toArray(FiberMap.unsafeGet(handlers, id)))
        // finalizers run uninterruptibly: the wait must be interruptible for the timeout to end it
        yield* Effect.forEach(fibers, Fiber.await, { concurrency: "unbounded", discard: true }).pipe(
          Effect.interruptible,
          Effect.timeoutOption(grace)
        )
        const left = [...running.keys()]
        yield* FiberMap.clear(handlers)

        if (left.length > 0) {
          yield* backend.release(workerId, left).pipe(Effect.catchAll(warn("releasing jobs at shutdown")))
          yield* Effect.logInfo(`worker ${workerId}: released ${left.length} unfinished jobs at shutdown`)
        }
        yield* Fiber.interrupt(heartbeats)
        yield* Fiber.interrupt(completing)
        yield* Deferred.succeed(stopped, undefined)
      })
    )

    return {
      workerId,
      running: Effect.sync(() => [...running.keys()]),
      stats: Ref.get(stats),
      await: Deferred.await(stopped)
    }
  }).pipe(Effect.annotateLogs("module", "Worker"))

/** `run` as a layer: the worker runs while the layer is alive; refused credentials fail its construction. */
export const layer = <A, E, R>(options: RunOptions<A, E, R>): Layer.Layer<never, WorkerRefused, WorkerBackend | R> =>
  Layer.scopedDiscard(run(options))
