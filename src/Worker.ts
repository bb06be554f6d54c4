import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberMap,
  Layer,
  Option,
  Queue,
  Ref,
  Schedule
} from "effect"
import type { Scope } from "effect"
import * as Os from "node:os"
import type { JobId } from "./Domain/JobId.js"
import type { ClaimedJob, HeartbeatResult, ProgressAck } from "./Domain/Worker.js"
import type { ProgressReport } from "./ProgressReporter.js"
import type { ClaimOptions, CompleteItem, FailOptions, WorkerScope } from "./Workers.js"
import { Workers } from "./Workers.js"

/** Any failure of the worker protocol: the domain errors, or a transport's own. */
export interface WorkerProtocolError {
  readonly _tag: string
  readonly message: string
}

/**
 * What `Worker.run` needs of the service: the `Workers` protocol, in this process (`Worker.local`) or over the
 * network (an HTTP or RPC client).
 */
export interface WorkerBackendShape {
  readonly claim: (
    workerId: string,
    options: ClaimOptions
  ) => Effect.Effect<ReadonlyArray<ClaimedJob>, WorkerProtocolError>
  readonly heartbeat: (workerId: string) => Effect.Effect<HeartbeatResult, WorkerProtocolError>
  readonly progress: (
    id: string,
    report: ProgressReport,
    scope: { readonly workerId: string }
  ) => Effect.Effect<ProgressAck, WorkerProtocolError>
  readonly complete: (
    id: string,
    options: WorkerScope & { readonly result?: unknown }
  ) => Effect.Effect<unknown, WorkerProtocolError>
  /**
   * Completes many jobs of the worker in one round trip, answering per item (in order) the job's id or why it was
   * not completed. Optional: without it `Worker.run` completes jobs one by one.
   */
  readonly completeMany?: (
    workerId: string,
    items: ReadonlyArray<CompleteItem>
  ) => Effect.Effect<ReadonlyArray<Either.Either<unknown, WorkerProtocolError>>, WorkerProtocolError>
  readonly fail: (id: string, options: FailOptions) => Effect.Effect<unknown, WorkerProtocolError>
  readonly canceled: (id: string, scope: WorkerScope) => Effect.Effect<unknown, WorkerProtocolError>
  readonly release: (workerId: string, ids: ReadonlyArray<JobId>) => Effect.Effect<unknown, WorkerProtocolError>
  /**
   * The worker ids the backend's credentials may act as are this and `<this>:…` (a worker token's `sub`):
   * `Worker.run`'s default id is then one of them. Unset: any id.
   */
  readonly workerNamespace?: string | undefined
  /** Immediate cancel requests, when the backend can push them; otherwise the heartbeat reports them. */
  readonly onCancelRequested?: (
    handler: (ids: ReadonlyArray<JobId> | "*") => void
  ) => Effect.Effect<void, never, Scope.Scope>
}

export class WorkerBackend extends Context.Tag("jobwatch/WorkerBackend")<WorkerBackend, WorkerBackendShape>() {}

/** `WorkerBackend` on this process's `Workers` service. */
export const local: Layer.Layer<WorkerBackend, never, Workers> = Layer.effect(
  WorkerBackend,
  Effect.map(Workers, (workers): WorkerBackendShape => ({
    claim: workers.claim,
    heartbeat: workers.heartbeat,
    progress: workers.progress,
    complete: workers.complete,
    completeMany: workers.completeMany,
    fail: workers.fail,
    canceled: workers.canceled,
    release: workers.release,
    onCancelRequested: workers.onCancelRequested
  }))
)

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
  /** Default 10 s; the leases of this worker's jobs last 1.5 × this. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** On shutdown, how long running handlers may take to finish before they are interrupted and released; 10 s. */
  readonly shutdownGrace?: Duration.DurationInput | undefined
  /** How long one claim waits for work (woken by the service when a job is ready); 30 s. */
  readonly claimWait?: Duration.DurationInput | undefined
}

/** A running worker. */
export interface WorkerHandle {
  readonly workerId: string
  /** Jobs its handlers run now. */
  readonly running: Effect.Effect<ReadonlyArray<JobId>>
  readonly stats: Effect.Effect<{ readonly completed: number; readonly failed: number; readonly canceled: number }>
}

/**
 * `Worker.run`'s worker id when none is given: `<host>-<pid>-<random>`, as `<namespace>:<host>-<pid>-<random>`
 * under a namespace (a worker token's `sub`: the ids it may act as), at most 200 characters.
 */
export const defaultWorkerId = (namespace?: string | undefined) => {
  const suffix = `-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const prefix = namespace === undefined ? "" : `${namespace}:`
  return `${prefix}${Os.hostname().slice(0, Math.max(0, 200 - prefix.length - suffix.length))}${suffix}`
}

/** The code, message and retryability of a handler's failure. */
const describeFailure = (error: unknown): { code: string; message: string; retryable: boolean } => {
  if (typeof error === "object" && error !== null) {
    const e = error as { code?: unknown; _tag?: unknown; message?: unknown; retryable?: unknown }
    return {
      code: typeof e.code === "string" ? e.code : typeof e._tag === "string" ? e._tag : "error",
      message: typeof e.message === "string" && e.message !== "" ? e.message : String(error),
      retryable: typeof e.retryable === "boolean" ? e.retryable : true
    }
  }
  return { code: "error", message: String(error), retryable: true }
}

type Ending =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<unknown, unknown> }
  | { readonly _tag: "Canceled" }
  | { readonly _tag: "TimedOut"; readonly seconds: number }

/**
 * Runs a worker until the scope closes: it claims jobs of `queues` (waiting for work without polling), runs
 * `handler` on each with at most `concurrency` at once, heartbeats, and ends every job with the handler's outcome.
 * Closing the scope stops claiming, lets running handlers finish within `shutdownGrace`, then interrupts the rest
 * and releases their jobs back to the queue (their attempt not used up) for another worker.
 */
export const run = <A, E, R>(
  options: RunOptions<A, E, R>
): Effect.Effect<WorkerHandle, never, WorkerBackend | Scope.Scope | R> =>
  Effect.gen(function*() {
    const backend = yield* WorkerBackend
    const workerId = options.workerId ?? defaultWorkerId(backend.workerNamespace)
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1))
    const heartbeatInterval = Duration.decode(options.heartbeatInterval ?? "10 seconds")
    const grace = Duration.decode(options.shutdownGrace ?? "10 seconds")
    const claimWait = Duration.decode(options.claimWait ?? "30 seconds")
    /** The jobs this worker holds (running, or their outcome being written), with their cancel signals. */
    const running = new Map<JobId, Deferred.Deferred<void>>()
    /** Handlers running: what `concurrency` bounds. */
    let busy = 0
    const stats = yield* Ref.make({ completed: 0, failed: 0, canceled: 0 })
    const freed = yield* Queue.sliding<void>(1)
    const handlers = yield* FiberMap.make<JobId>()

    const requestCancel = (ids: ReadonlyArray<JobId> | "*") => {
      if (ids === "*") return // too many to list here: the next heartbeat names them
      for (const id of ids) {
        const cancel = running.get(id)
        if (cancel !== undefined) Deferred.unsafeDone(cancel, Effect.void)
      }
    }

    const warn = (what: string) => (error: WorkerProtocolError) =>
      Effect.logWarning(`worker ${workerId}: ${what}: ${error.message}`)

    /**
     * Completions go through one writer: the jobs that finish while a write is in flight are written together by
     * the next one (a group commit: one statement, one commit, one doorbell for the lot). A handler's slot stays
     * taken until its job's completion is written. A batch the backend refuses as a whole is retried one by one.
     */
    type Completion = {
      readonly item: CompleteItem
      readonly done: Deferred.Deferred<void, WorkerProtocolError>
    }
    const completions = yield* Queue.unbounded<Completion>()
    const completeOne = (c: Completion) =>
      backend.complete(c.item.id, { workerId, result: c.item.result }).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Deferred.done(c.done, Exit.asVoid(exit)))
      )
    const completeMany = backend.completeMany
    const completer = completeMany === undefined ? Effect.never : Effect.forever(
      Effect.gen(function*() {
        const batch = Chunk.toReadonlyArray(yield* Queue.takeBetween(completions, 1, 1000))
        const answers = yield* completeMany(workerId, batch.map((c) => c.item)).pipe(Effect.exit)
        if (Exit.isSuccess(answers) && answers.value.length === batch.length) {
          yield* Effect.forEach(batch, (c, i) => {
            const answer = answers.value[i]!
            return Deferred.done(c.done, Either.isRight(answer) ? Exit.void : Exit.fail(answer.left))
          }, { discard: true })
        } else {
          if (Exit.isFailure(answers)) {
            yield* Effect.logWarning(`worker ${workerId}: a batch of ${batch.length} completions failed; one by one`, answers.cause)
          }
          yield* Effect.forEach(batch, completeOne, { concurrency: 4, discard: true })
        }
      })
    )
    const complete = (job: ClaimedJob, result: unknown) =>
      completeMany === undefined
        ? backend.complete(job.id, { workerId, result })
        : Effect.gen(function*() {
          const done = yield* Deferred.make<void, WorkerProtocolError>()
          yield* Queue.offer(completions, { item: { id: job.id, result }, done })
          yield* Deferred.await(done)
        })

    /** Ends the job as the handler's outcome says. */
    const settle = (job: ClaimedJob, ending: Ending) => {
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
            return complete(job, ending.exit.value ?? null).pipe(
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

    /** Runs one job: the handler raced against its cancellation and its timeout. */
    const runJob = (job: ClaimedJob, cancel: Deferred.Deferred<void>) => {
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
        const handled = options.handler(job, ctx).pipe(
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
        // the loser is interrupted: a cancel request interrupts the handler fiber
        const ending = yield* Effect.raceFirst(timed, Deferred.await(cancel).pipe(Effect.as<Ending>({ _tag: "Canceled" })))
        // the handler's slot is free: the next claim overlaps with the write of this job's outcome
        yield* freeSlot
        // the outcome is recorded even if shutdown interrupts meanwhile
        yield* Effect.uninterruptible(settle(job, ending).pipe(Effect.catchAll(warn(`ending job ${job.id}`))))
      }).pipe(
        Effect.ensuring(Effect.suspend(() => {
          running.delete(job.id)
          // wakes the claim loop also when it waits for held jobs, not handlers, to drop below the bound
          return slotHeld ? freeSlot : Queue.offer(freed, undefined)
        }))
      )
    }

    const claimLoop = Effect.gen(function*() {
      while (true) {
        // at most `concurrency` handlers, and at most as many jobs again whose outcome is being written
        const free = Math.min(concurrency - busy, 2 * concurrency - running.size)
        if (free <= 0) {
          yield* Queue.take(freed)
          continue
        }
        const jobs = yield* backend.claim(workerId, {
          queues: options.queues,
          names: options.names,
          limit: free,
          wait: claimWait,
          heartbeatInterval,
          start: true
        }).pipe(
          Effect.catchAll((error) =>
            warn("claim failed; retrying in 1 s")(error).pipe(Effect.zipRight(Effect.sleep("1 second")), Effect.as([]))
          )
        )
        for (const job of jobs) {
          const cancel = yield* Deferred.make<void>()
          running.set(job.id, cancel)
          busy++
          yield* FiberMap.run(handlers, job.id, runJob(job, cancel))
        }
      }
    })

    const heartbeat = backend.heartbeat(workerId).pipe(
      Effect.tap((result) => Effect.sync(() => requestCancel(result.cancelRequested))),
      Effect.catchAll((error) => error._tag === "WorkerNotFound" && running.size === 0 ? Effect.void : warn("heartbeat")(error)),
      Effect.repeat(Schedule.spaced(heartbeatInterval)),
      Effect.asVoid
    )

    // forked before the shutdown finalizer is added: it outlives the handlers that wait on it
    const completing = yield* Effect.forkScoped(completer)
    if (backend.onCancelRequested !== undefined) yield* backend.onCancelRequested(requestCancel)
    const heartbeats = yield* Effect.forkScoped(heartbeat.pipe(Effect.delay(heartbeatInterval)))
    const claiming = yield* Effect.forkScoped(claimLoop)

    // shutdown: stop claiming, give running handlers the grace period, then interrupt and release the rest
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
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
      })
    )

    return {
      workerId,
      running: Effect.sync(() => [...running.keys()]),
      stats: Ref.get(stats)
    }
  })

/** `run` as a layer: the worker runs while the layer is alive. */
export const layer = <A, E, R>(options: RunOptions<A, E, R>): Layer.Layer<never, never, WorkerBackend | R> =>
  Layer.scopedDiscard(run(options))
