import { Deferred, Duration, Effect, Either, Option, Queue, Schema, Stream } from "effect"
import type { InvalidInput } from "./Domain/Errors.js"
import { JobNotFound } from "./Domain/Errors.js"
import type { JobOutcome } from "./Domain/Job.js"
import type { JobEvent } from "./Domain/JobEvent.js"
import { isTerminalEvent } from "./Domain/JobEvent.js"
import type { JobId } from "./Domain/JobId.js"
import { isTerminal } from "./Domain/JobStatus.js"
import { DurationInput, JobIdFromString, JobIds, Version } from "./Domain/Requests.js"
import { decodeField } from "./internal/invalid.js"
import { EventsRepo, outcomeOfEvent } from "./EventLog.js"
import { JobsRepo } from "./Jobs.js"
import { Notifications } from "./Notifications.js"

const jobIdOf = decodeField(JobIdFromString, "id")
const decodeIds = decodeField(JobIds, "ids")
const validIds = decodeField(Schema.Array(JobIdFromString).pipe(Schema.minItems(1)), "ids")
const afterVersionOf = decodeField(Version, "afterVersion")

/**
 * Awaits jobs live: any number of waiters share this process's one LISTEN connection through `Notifications`,
 * and a job nobody waits for any more costs nothing.
 */
export class CompletionWatcher extends Effect.Service<CompletionWatcher>()("jobwatch/CompletionWatcher", {
  dependencies: [Notifications.Default, JobsRepo.Default, EventsRepo.Default],
  effect: Effect.gen(function*() {
    const notifications = yield* Notifications
    const repo = yield* JobsRepo
    const eventsRepo = yield* EventsRepo

    /**
     * One subscription entry per distinct id; `onOutcome` gets each job's index in `unique` and its terminal
     * outcome (once), `onMissing` an unknown job.
     */
    const entriesFor = (
      unique: ReadonlyArray<JobId>,
      onOutcome: (i: number, outcome: JobOutcome) => void,
      onMissing: (id: JobId) => void
    ) =>
      unique.map((id, i) => {
        let done = false
        const resolve = (outcome: JobOutcome) => {
          if (done) return
          done = true
          onOutcome(i, outcome)
        }
        return {
          id,
          from: { snapshot: true } as const,
          subscriber: {
            onSnapshot: (outcome: JobOutcome | undefined) => {
              if (outcome === undefined) onMissing(id)
              else if (outcome.terminal) resolve(outcome)
            },
            onEvents: (events: ReadonlyArray<JobEvent>) => {
              const last = events[events.length - 1]!
              if (isTerminalEvent(last)) resolve(outcomeOfEvent(last))
            },
            onOutcome: resolve,
            // purged while it was waited for: it is now unknown, like any other id
            onGone: () => onMissing(id)
          }
        }
      })

    /** Awaits the terminal outcome of one job, registered only while it waits. */
    const awaitOne = (id: JobId) =>
      notifications.awaitWith<JobOutcome, JobNotFound>((settle) =>
        entriesFor(
          [id],
          (_, outcome) => settle(Effect.succeed(outcome)),
          () => settle(Effect.fail(new JobNotFound({ id })))
        )
      )


    /**
     * The terminal outcome of a job (completed, failed, canceled or deleted) with its result and error.
     *
     * Its span (a child of the caller's) is not made the parent of what runs inside it, as `Effect.fn` would do:
     * nothing inside makes spans (the reads are the notification loop's), and providing it kept a copy of the
     * fiber's context per waiter. A waiting fiber held 10.6 KB instead of 7.5 KB; with 1,000 waiters made at once,
     * every young-generation collection copied that while their jobs finished.
     */
    const waitFor = (id: string): Effect.Effect<JobOutcome, JobNotFound | InvalidInput> =>
      Effect.useSpan("CompletionWatcher.waitFor", () => Effect.flatMap(jobIdOf(id), awaitOne))

    /** The terminal outcomes of all `ids`, in input order; a repeated id is waited for once. */
    const waitForAll = Effect.fn("CompletionWatcher.waitForAll")(function*(ids: ReadonlyArray<string>) {
      const jobIds = yield* validIds(ids)
      const unique = [...new Set(jobIds)]
      const outcomes = new Array<JobOutcome | undefined>(unique.length)
      let left = unique.length
      yield* notifications.awaitWith<void, JobNotFound>((settle) =>
        entriesFor(unique, (i, outcome) => {
          outcomes[i] = outcome
          if (--left === 0) settle(Effect.void)
        }, (id) => settle(Effect.fail(new JobNotFound({ id }))))
      )
      const position = new Map(unique.map((id, i) => [id, i]))
      return jobIds.map((id) => outcomes[position.get(id)!]!)
    })

    /** The first of `ids` to finish; the other registrations are released at once. */
    const waitForFirst = Effect.fn("CompletionWatcher.waitForFirst")(function*(ids: ReadonlyArray<string>) {
      const unique = [...new Set(yield* validIds(ids))]
      return yield* notifications.awaitWith<JobOutcome, JobNotFound>((settle) =>
        entriesFor(
          unique,
          (_, outcome) => settle(Effect.succeed(outcome)),
          (id) => settle(Effect.fail(new JobNotFound({ id })))
        )
      )
    })

    /**
     * Each of `ids`' terminal outcomes as it lands, in completion order (a repeated id once); the stream ends after
     * the last one. An unknown (or purged) job fails it with `JobNotFound`. The jobs are watched only while the
     * stream is consumed, through the same shared subscriptions as `waitForAll`.
     */
    const watchMany = (ids: ReadonlyArray<string>): Stream.Stream<JobOutcome, JobNotFound | InvalidInput> =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          const unique = [...new Set(yield* validIds(ids))]
          const landed = yield* Queue.unbounded<Either.Either<JobOutcome, JobNotFound>>()
          yield* notifications.subscribeMany(entriesFor(
            unique,
            (_, outcome) => Queue.unsafeOffer(landed, Either.right(outcome)),
            (id) => Queue.unsafeOffer(landed, Either.left(new JobNotFound({ id })))
          ))
          return Stream.fromQueue(landed).pipe(Stream.mapEffect((outcome) => outcome), Stream.take(unique.length))
        })
      )

    /**
     * Waits up to `timeout` for the job to finish, then answers its latest `JobInfo`, terminal or not.
     */
    const awaitCompletion = Effect.fn("CompletionWatcher.awaitCompletion")(function*(
      id: string,
      timeout: Duration.DurationInput
    ) {
      const jobId = yield* jobIdOf(id)
      const wait = yield* decodeField(DurationInput, "timeout")(timeout)
      yield* awaitOne(jobId).pipe(
        Effect.timeoutOption(wait),
        Effect.asVoid
      )
      return yield* repo.get(jobId)
    })

    /** Whether the job is terminal now. */
    const isComplete = Effect.fn("CompletionWatcher.isComplete")(function*(id: string) {
      const row = yield* repo.status(yield* jobIdOf(id))
      return isTerminal(row.status)
    })

    /**
     * The job's events after `afterVersion`, gap-free and in order, live, ending after the terminal event. An
     * unknown job fails with `JobNotFound`.
     */
    const watch = (
      id: string,
      options: { readonly afterVersion?: number | undefined } = {}
    ): Stream.Stream<JobEvent, JobNotFound | InvalidInput> =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          const jobId = yield* jobIdOf(id)
          const after = options.afterVersion === undefined ? 0 : yield* afterVersionOf(options.afterVersion)
          // null: the job was purged meanwhile
          const queue = yield* Queue.unbounded<ReadonlyArray<JobEvent> | null>()
          yield* notifications.subscribe(jobId, { afterVersion: after }, {
            onEvents: (events) => Queue.unsafeOffer(queue, events),
            onGone: () => Queue.unsafeOffer(queue, null)
          })
          if (!(yield* repo.exists(jobId))) return yield* new JobNotFound({ id: jobId })
          return Stream.fromQueue(queue).pipe(
            Stream.mapEffect((events) => events === null ? new JobNotFound({ id: jobId }) : Effect.succeed(events)),
            Stream.flattenIterables,
            Stream.takeUntil(isTerminalEvent)
          )
        }).pipe(Effect.withSpan("CompletionWatcher.watch"))
      )

    /**
     * The events after `afterVersion` as soon as there is at least one (at once when there already are): the
     * building block of long-polling. Bound it with a timeout.
     */
    const changes = Effect.fn("CompletionWatcher.changes")(function*(id: string, afterVersion: number) {
      const jobId = yield* jobIdOf(id)
      const after = yield* afterVersionOf(afterVersion)
      return yield* Effect.scoped(
        Effect.gen(function*() {
          const next = yield* Deferred.make<ReadonlyArray<JobEvent>, JobNotFound>()
          yield* notifications.subscribe(jobId, { afterVersion: after }, {
            onEvents: (events) => Deferred.unsafeDone(next, Effect.succeed(events)),
            onGone: () => Deferred.unsafeDone(next, Effect.fail(new JobNotFound({ id: jobId })))
          })
          if (!(yield* repo.exists(jobId))) return yield* new JobNotFound({ id: jobId })
          return yield* Deferred.await(next)
        })
      )
    })

    /**
     * Waits for all (`mode: "all"`) or the first (`"any"`) of `ids` (1–1,000) to be terminal, for at most `timeout`,
     * then answers every job's current outcome in input order and whether the wait timed out. With `owner`, a job of
     * another owner is `JobNotFound`, like an unknown one.
     */
    const waitMany = Effect.fn("CompletionWatcher.waitMany")(function*(
      ids: ReadonlyArray<string>,
      options: {
        readonly mode: "all" | "any"
        readonly timeout: Duration.DurationInput
        readonly owner?: string | undefined
      }
    ) {
      const jobIds = yield* decodeIds(ids)
      const timeout = yield* decodeField(DurationInput, "timeout")(options.timeout)
      const found = yield* repo.visible(jobIds, options.owner)
      const missing = jobIds.find((id) => !found.has(id))
      if (missing !== undefined) return yield* new JobNotFound({ id: missing })
      const waited = Duration.isZero(timeout) ? Option.none() : yield* (options.mode === "all"
        ? waitForAll(jobIds).pipe(Effect.asVoid)
        : waitForFirst(jobIds).pipe(Effect.asVoid)).pipe(Effect.timeoutOption(timeout))
      const outcomes = new Map((yield* eventsRepo.outcomes(jobIds)).map((outcome) => [outcome.id, outcome]))
      const jobs: Array<JobOutcome> = []
      for (const id of jobIds) {
        const outcome = outcomes.get(id)
        // deleted since it was found: its outcome is gone with it
        if (outcome === undefined) return yield* new JobNotFound({ id })
        jobs.push(outcome)
      }
      return { jobs, timedOut: Option.isNone(waited) }
    })

    return { waitFor, waitForAll, waitForFirst, waitMany, watchMany, awaitCompletion, isComplete, watch, changes } as const
  })
}) {}
