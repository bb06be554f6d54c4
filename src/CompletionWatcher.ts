import { Deferred, Duration, Effect, Either, Option, Queue, Schema, Stream } from "effect"
import type { InvalidInput } from "./Domain/Errors.js"
import { JobNotFound } from "./Domain/Errors.js"
import type { JobOutcome } from "./Domain/Job.js"
import type { JobEvent } from "./Domain/JobEvent.js"
import { isTerminalEvent } from "./Domain/JobEvent.js"
import type { JobId } from "./Domain/JobId.js"
import { isTerminal } from "./Domain/JobStatus.js"
import { DurationInput, JobIdFromString, JobIds, Version } from "./Domain/Requests.js"
import type { Trigger } from "./internal/firstOf.js"
import { decodeField } from "./internal/invalid.js"
import { EventsRepo, outcomeOfEvent } from "./EventLog.js"
import { JobsRepo } from "./Jobs.js"
import type { Subscriber } from "./Notifications.js"
import { Notifications } from "./Notifications.js"

const jobIdOf = decodeField(JobIdFromString, "id")
const decodeIds = decodeField(JobIds, "ids")
const validIds = decodeField(Schema.Array(JobIdFromString).pipe(Schema.minItems(1)), "ids")
const afterVersionOf = decodeField(Version, "afterVersion")
const snapshot = { snapshot: true } as const

/** Where the waiters of one call report: each job's outcome (by its index), an unknown job, and arming. */
interface Sink {
  readonly outcome: (i: number, outcome: JobOutcome) => void
  readonly missing: (id: JobId) => void
  readonly armed?: () => void
}

/**
 * The subscriber of one awaited job: one object whose callbacks are its methods, not closures (a waiter by the
 * thousand costs its fields). It reports the terminal outcome once, and `armed` once: at its first callback, which
 * is its snapshot, or an outcome that came before it.
 */
class Awaiting implements Subscriber {
  private done = false
  private unarmed = true
  constructor(readonly id: JobId, readonly i: number, readonly sink: Sink) {}
  private arm() {
    if (!this.unarmed) return
    this.unarmed = false
    this.sink.armed?.()
  }
  private resolve(outcome: JobOutcome) {
    this.arm()
    if (this.done) return
    this.done = true
    this.sink.outcome(this.i, outcome)
  }
  onSnapshot(outcome: JobOutcome | undefined) {
    if (outcome === undefined) this.onGone()
    else if (outcome.terminal) this.resolve(outcome)
    else this.arm()
  }
  onEvents(events: ReadonlyArray<JobEvent>) {
    this.arm()
    const last = events[events.length - 1]!
    if (isTerminalEvent(last)) this.resolve(outcomeOfEvent(last))
  }
  onOutcome(outcome: JobOutcome) {
    this.resolve(outcome)
  }
  /** Unknown, or purged while it was waited for: it is now unknown, like any other id. */
  onGone() {
    this.sink.missing(this.id)
    this.arm()
  }
}

/** The sink of a wait for one outcome: the first outcome (or unknown job) settles it. */
class Settles implements Sink {
  constructor(readonly settle: (result: Effect.Effect<JobOutcome, JobNotFound>) => void) {}
  outcome(_: number, outcome: JobOutcome) {
    this.settle(Effect.succeed(outcome))
  }
  missing(id: JobId) {
    this.settle(Effect.fail(new JobNotFound({ id })))
  }
}

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

    /** One subscription entry per distinct id, reporting to `sink`. */
    const entriesFor = (unique: ReadonlyArray<JobId>, sink: Sink) =>
      unique.map((id, i) => ({ id, from: snapshot, subscriber: new Awaiting(id, i, sink) }))

    /** Awaits the terminal outcome of one job, registered only while it waits. */
    const awaitOne = (id: JobId) =>
      notifications.awaitOne<JobOutcome, JobNotFound>(id, (settle) => new Awaiting(id, 0, new Settles(settle)))

    /**
     * The terminal outcome of a job (completed, failed, canceled or deleted) with its result and error.
     *
     * Not a span per call (`waitForAll` has one): a span, even without its stack trace, was 3 KB of the 6 KB a waiter
     * held beyond its fiber, for as long as it waits; what a wait does is the notification loop's work, not its own.
     */
    const waitFor = (id: string): Effect.Effect<JobOutcome, JobNotFound | InvalidInput> =>
      Effect.flatMap(jobIdOf(id), awaitOne)

    /** The terminal outcomes of all `ids`, in input order; a repeated id is waited for once. */
    const waitForAll = Effect.fn("CompletionWatcher.waitForAll")(function*(ids: ReadonlyArray<string>) {
      const jobIds = yield* validIds(ids)
      const unique = [...new Set(jobIds)]
      const outcomes = new Array<JobOutcome | undefined>(unique.length)
      let left = unique.length
      yield* notifications.awaitWith<void, JobNotFound>((settle) =>
        entriesFor(unique, {
          outcome: (i, outcome) => {
            outcomes[i] = outcome
            if (--left === 0) settle(Effect.void)
          },
          missing: (id) => settle(Effect.fail(new JobNotFound({ id })))
        })
      )
      const position = new Map(unique.map((id, i) => [id, i]))
      return jobIds.map((id) => outcomes[position.get(id)!]!)
    })

    /** The first of `ids` to finish; the other registrations are released at once. */
    const waitForFirst = Effect.fn("CompletionWatcher.waitForFirst")(function*(ids: ReadonlyArray<string>) {
      const unique = [...new Set(yield* validIds(ids))]
      return yield* notifications.awaitWith<JobOutcome, JobNotFound>((settle) => entriesFor(unique, new Settles(settle)))
    })

    /**
     * Subscribes to `ids`' outcomes until the scope closes, and returns once the subscription is armed: every job
     * registered and its current state read, so that whatever happens to them from then on is in the stream. The
     * stream gives each terminal outcome as it lands, in completion order (a repeated id once; those finished already
     * first), and ends after the last. An unknown job fails the subscription, one purged since fails the stream, with
     * `JobNotFound`.
     */
    const subscribe = Effect.fn("CompletionWatcher.subscribe")(function*(ids: ReadonlyArray<string>) {
      const unique = [...new Set(yield* validIds(ids))]
      const landed = yield* Queue.unbounded<Either.Either<JobOutcome, JobNotFound>>()
      const armed = yield* Deferred.make<void, JobNotFound>()
      let left = unique.length
      yield* notifications.subscribeMany(entriesFor(unique, {
        outcome: (_, outcome) => Queue.unsafeOffer(landed, Either.right(outcome)),
        missing: (id) => {
          Deferred.unsafeDone(armed, Effect.fail(new JobNotFound({ id })))
          Queue.unsafeOffer(landed, Either.left(new JobNotFound({ id })))
        },
        armed: () => {
          if (--left === 0) Deferred.unsafeDone(armed, Effect.void)
        }
      }))
      yield* Deferred.await(armed)
      const outcomes: Stream.Stream<JobOutcome, JobNotFound> = Stream.fromQueue(landed).pipe(
        Stream.mapEffect((outcome) => outcome),
        Stream.take(unique.length)
      )
      return outcomes
    })

    /**
     * Each of `ids`' terminal outcomes as it lands, in completion order (a repeated id once); the stream ends after
     * the last one. An unknown (or purged) job fails it with `JobNotFound`. The jobs are watched only while the
     * stream is consumed, through the same shared subscriptions as `waitForAll` (it is `subscribe`'s stream).
     */
    const watchMany = (ids: ReadonlyArray<string>): Stream.Stream<JobOutcome, JobNotFound | InvalidInput> =>
      Stream.unwrapScoped(subscribe(ids))

    /**
     * `waitFor` and `changes` as triggers (`firstOf`), for waits that race other signals without a fiber per side
     * (long-polls): `fire` once the job is terminal (`afterVersion` absent) or has an event after `afterVersion`, or
     * is unknown or purged. Registered at once; the answer unregisters.
     */
    const whenChanged = (id: JobId, afterVersion?: number): Trigger => (fire) =>
      notifications.listen([
        afterVersion === undefined
          ? { id, from: snapshot, subscriber: new Awaiting(id, 0, { outcome: fire, missing: fire }) }
          : { id, from: { afterVersion }, subscriber: { onEvents: fire, onGone: fire } }
      ])

    /**
     * Follows a job's events after `afterVersion`, gap-free and in order, as `onEvents` calls from the notification
     * path (no fiber, no queue), until the answer is called; `onGone` when the job is purged. For push channels that
     * write each event to a connection (Socket.IO). The caller has checked that the job exists.
     */
    const follow = (
      id: JobId,
      afterVersion: number,
      subscriber: { readonly onEvents: (events: ReadonlyArray<JobEvent>) => void; readonly onGone: () => void }
    ): (() => void) => notifications.listen([{ id, from: { afterVersion }, subscriber }])

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

    return {
      waitFor,
      waitForAll,
      waitForFirst,
      waitMany,
      subscribe,
      watchMany,
      awaitCompletion,
      isComplete,
      watch,
      changes,
      whenChanged,
      follow
    } as const
  })
}) {}
