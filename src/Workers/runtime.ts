import { Chunk, Deferred, Duration, Effect, Either, Exit, Option, Queue } from "effect"
import type { Tracer } from "effect"
import { Forbidden, Unauthorized } from "../Domain/Auth.js"
import type { JobId } from "../Domain/JobId.js"
import { externalSpanOf } from "../Domain/TraceContext.js"
import type { CompleteItem } from "../Workers.js"
import type { ClaimedJob } from "../Domain/Worker.js"
import type { NextClaimOptions, WorkerBackendShape, WorkerProtocolError } from "./WorkerBackend.js"
import { describeError, makeStreak } from "../internal/retry.js"

/**
 * `Worker.run`'s worker id when none is given: `<host>-<pid>-<random>`, as `<namespace>:<host>-<pid>-<random>`
 * under a namespace (a worker token's `sub`: the ids it may act as), at most 200 characters.
 */
export const defaultWorkerId = (namespace?: string | undefined) => {
  const suffix = `-${globalThis.process?.pid ?? 0}-${Math.random().toString(36).slice(2, 8)}`
  const prefix = namespace === undefined ? "" : `${namespace}:`
  return `${prefix}${hostName().slice(0, Math.max(0, 200 - prefix.length - suffix.length))}${suffix}`
}

/** The host's name (Node's `os.hostname()`), without importing Node: this module also runs in browsers. */
const hostName = (): string => {
  const process = globalThis.process
  return process?.getBuiltinModule?.("os")?.hostname() ?? process?.env?.["HOSTNAME"] ?? "worker"
}

/**
 * The span a worker runs a job's handler in (`Worker.process`, kind consumer, with OpenTelemetry's messaging
 * attributes): the root of a trace of its own, linked to the trace context the job was created in, when it has one.
 * A link, not a parent, as the messaging conventions recommend: a job may wait for hours, run several attempts (a
 * span each) and be claimed in a batch with others, and a child would stretch the producer's trace over all of that.
 */
export const processSpan = (job: ClaimedJob, workerId: string): Tracer.SpanOptions => {
  const created = job.traceparent === undefined ? Option.none() : externalSpanOf(job.traceparent)
  return {
    kind: "consumer",
    root: true,
    captureStackTrace: false,
    links: Option.isNone(created) ? [] : [{ _tag: "SpanLink", span: created.value, attributes: {} }],
    attributes: {
      "messaging.system": "jobwatch",
      "messaging.operation.type": "process",
      "messaging.destination.name": job.queue,
      "messaging.message.id": job.id,
      "jobwatch.job.name": job.name,
      "jobwatch.job.attempt": job.attempt,
      "jobwatch.worker.id": workerId
    }
  }
}

/** How a job's run ended: the handler's exit, a cancel request, or its timeout. */
export type Ending =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<unknown, unknown> }
  | { readonly _tag: "Canceled" }
  | { readonly _tag: "TimedOut"; readonly seconds: number }

/** The service refused the worker's credentials (401, 403): not transient, so `Worker.run` stops on it. */
export type WorkerRefused = Unauthorized | Forbidden

export const isRefusal = (error: WorkerProtocolError): error is WorkerRefused =>
  error instanceof Unauthorized || error instanceof Forbidden

/** The code, message and retryability of a handler's failure. */
export const describeFailure = (error: unknown): { code: string; message: string; retryable: boolean } => {
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

type Completion = {
  readonly item: CompleteItem
  readonly done: Deferred.Deferred<void, WorkerProtocolError>
  /** Whether the job's handler slot waits for this completion, to be claimed for with it. */
  readonly slot: boolean
}

/** How `groupCommit` claims the next jobs with its completions (`WorkerBackendShape.completeAndClaim`). */
export interface NextClaims<R = never> {
  /** The claim's options (its limit is the batch's slots), or undefined while the worker claims no more. */
  readonly options: () => Omit<NextClaimOptions, "limit"> | undefined
  /** Takes the jobs claimed with a batch: called before the batch's completions are answered. */
  readonly take: (jobs: ReadonlyArray<ClaimedJob>) => Effect.Effect<void, never, R>
}

/**
 * A worker's completions through one writer: the jobs that finish while a write is in flight are written together
 * by the next one (a group commit: one statement, one commit, one doorbell for the lot); a write starts as soon as
 * one completion is queued (nothing waits for company). With `next` and a backend's `completeAndClaim`, the same
 * statement claims the next jobs for the slots of the batch's completions that hold one (`complete`'s `slot`), as
 * the floor of a PostgreSQL queue does: one round trip per batch, not two. `complete` waits until its job's
 * completion is written; `writer` is the loop to fork. A batch the backend refuses as a whole is retried one by one.
 * Without `completeMany` in the backend, jobs are completed one by one.
 */
export const groupCommit = <R = never>(backend: WorkerBackendShape, workerId: string, next?: NextClaims<R>) =>
  Effect.gen(function*() {
    const completions = yield* Queue.unbounded<Completion>()
    const completeOne = (c: Completion) =>
      backend.complete(c.item.id, { workerId, result: c.item.result }).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Deferred.done(c.done, Exit.asVoid(exit)))
      )
    const { completeAndClaim, completeMany } = backend
    /** The batch's completions, and the next claim for its slots when it has any and the worker still claims. */
    const write = (batch: ReadonlyArray<Completion>, complete: NonNullable<typeof completeMany>) => {
      const items = batch.map((c) => c.item)
      const claim = next === undefined || completeAndClaim === undefined ? undefined : next.options()
      const slots = claim === undefined ? 0 : batch.filter((c) => c.slot).length
      if (claim === undefined || slots === 0) return complete(workerId, items)
      // uninterruptible: the jobs an answer claims are handed over, whatever comes
      return Effect.uninterruptible(
        completeAndClaim!(workerId, items, { ...claim, limit: slots }).pipe(
          Effect.tap((done) => next!.take(done.claimed)),
          Effect.map((done) => done.answers)
        )
      )
    }
    const writer: Effect.Effect<never, never, R> = completeMany === undefined ? Effect.never : Effect.forever(
      Effect.gen(function*() {
        const batch = Chunk.toReadonlyArray(yield* Queue.takeBetween(completions, 1, 1000))
        const answers = yield* write(batch, completeMany).pipe(Effect.exit)
        if (Exit.isSuccess(answers) && answers.value.length === batch.length) {
          yield* Effect.forEach(batch, (c, i) => {
            const answer = answers.value[i]!
            return Deferred.done(c.done, Either.isRight(answer) ? Exit.void : Exit.fail(answer.left))
          }, { discard: true })
        } else {
          if (Exit.isFailure(answers)) {
            yield* Effect.logWarning(
              `worker ${workerId}: a batch of ${batch.length} completions failed (${describeError(answers.cause)}); ` +
                "one by one"
            )
          }
          yield* Effect.forEach(batch, completeOne, { concurrency: 4, discard: true })
        }
      })
    )
    /** Whether `complete` claims for the slots of its jobs (then a job's slot waits for its completion). */
    const claimsNext = next !== undefined && completeAndClaim !== undefined && completeMany !== undefined
    /** `queued` runs once the completion is queued for the writer, before the wait for its write. */
    const complete = (
      id: string,
      result: unknown,
      slot = false,
      queued: Effect.Effect<void> = Effect.void
    ): Effect.Effect<unknown, WorkerProtocolError> =>
      completeMany === undefined
        ? Effect.zipRight(queued, backend.complete(id, { workerId, result }))
        : Effect.gen(function*() {
          const done = yield* Deferred.make<void, WorkerProtocolError>()
          yield* Queue.offer(completions, { item: { id, result }, done, slot })
          yield* queued
          yield* Deferred.await(done)
        })
    return { writer, complete, claimsNext } as const
  })

/**
 * A worker's heartbeats: every `interval()` once it is `known` (nothing is held before a claim answered), and
 * sooner while failing: a failed heartbeat is retried with backoff (capped at `cap`, logged by streak), but never
 * later than the interval. Ends when the service refuses the worker's credentials (`onRefused`).
 */
export const heartbeatLoop = (options: {
  readonly backend: WorkerBackendShape
  readonly workerId: string
  readonly interval: () => Duration.Duration
  readonly known: Effect.Effect<void>
  readonly cap: Duration.DurationInput
  /** Whether the worker holds no job (then a `WorkerNotFound` is only a worker forgotten while idle). */
  readonly idle: () => boolean
  readonly onCancelRequested: (ids: ReadonlyArray<JobId>) => void
  readonly onRefused: (error: WorkerRefused) => Effect.Effect<void>
}) =>
  Effect.gen(function*() {
    yield* options.known
    const streak = yield* makeStreak(`worker ${options.workerId}: heartbeat`, { cap: options.cap })
    let wait = options.interval()
    while (true) {
      yield* Effect.sleep(wait)
      wait = options.interval()
      const result = yield* Effect.either(options.backend.heartbeat(options.workerId))
      if (Either.isRight(result)) {
        options.onCancelRequested(result.right.cancelRequested)
        if (streak.failures() > 0) yield* streak.succeeded
      } else if (isRefusal(result.left)) {
        return yield* options.onRefused(result.left)
      } else if (result.left._tag !== "WorkerNotFound" || !options.idle()) {
        // (a worker forgotten while idle is registered again by its next claim)
        wait = Duration.min(yield* streak.failed(result.left), options.interval())
      }
    }
  })
