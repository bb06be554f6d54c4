import { SqlClient } from "@effect/sql"
import { Effect, Either, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidTransition, JobNotFound, NotJobHolder } from "../Domain/Errors.js"
import type { JobInfo } from "../Domain/Job.js"
import { JobId } from "../Domain/JobId.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { allowedFrom, JobStatus as JobStatusSchema } from "../Domain/JobStatus.js"
import { LocalEvents } from "../EventLog.js"
import type { ClaimedRow } from "../internal/rows.js"
import {
  claimedRowOf,
  decodeFound,
  EventRecord,
  eventRowOf,
  JobRecord,
  jobRowOf,
  toJobEvent,
  toJobInfo
} from "../internal/rows.js"
import { decodeCompletedClaimed, eventOf } from "./CompletionAnswers.js"
import { JobsRepo } from "./JobsRepo.js"
import { recordChange, secondsBetween } from "../Metrics/jobs.js"

/** Counts a change in the metrics: a start with its wait since the job was due, an attempt's end with its run time. */
const count = (job: JobRecord, event: EventRecord) => {
  const from = event.previous_status
  const seconds = from === "pending" || from === "scheduled"
    ? secondsBetween(job.scheduled_at, job.claimed_at ?? job.started_at)
    : secondsBetween(job.claimed_at, event.created_at)
  recordChange(job.queue, from, event.status, seconds)
}

/**
 * What a transition changes besides the status and the version: each kind is one branch of the
 * `job_transition` function (sql/functions), parsed and planned once per connection.
 */
export type Change =
  /** The status only. */
  | { readonly kind: "status" }
  /** And `started_at`. */
  | { readonly kind: "start" }
  /** And the result (JSON text); progress ends at 100; the job is let go. */
  | { readonly kind: "complete"; readonly resultJson: string }
  /** And the error, for good; the job is let go. */
  | { readonly kind: "fail"; readonly code: string | null; readonly error: string }
  /** Back to the queue after `delayMs`, keeping the attempt's error; the job is let go. */
  | { readonly kind: "retry"; readonly delayMs: number; readonly code: string | null; readonly error: string }
  /** Finished now (canceled, deleted); the job is let go. */
  | { readonly kind: "finish" }
  /** The status stays; `cancel_requested` is set, once (refused when it is set already). */
  | { readonly kind: "request_cancel" }
  /**
   * The holder's fail: another attempt after the job's backoff (jittered by `jitter`, 0–1, from `now`) when
   * `retryable`, not canceled and attempts remain; else `failed` for good (the transition's `to` is not used).
   */
  | {
    readonly kind: "attempt_failed"
    readonly retryable: boolean
    readonly now: Date
    readonly jitter: number
    readonly code: string | null
    readonly error: string
  }

/** A status change of one job: the compare-and-set primitive every lifecycle operation is built on. */
export interface Transition {
  readonly id: JobId
  /** The new status; omitted for a change that keeps the status (a cancel request). */
  readonly to?: JobStatus | undefined
  /** The statuses the job may be in; by default those the transition table allows to move to `to`. */
  readonly from?: ReadonlyArray<JobStatus> | undefined
  /** Only the job of this owner (another owner's job is not found). */
  readonly owner?: string | undefined
  /** Only while this worker holds the job. */
  readonly workerId?: string | undefined
  /** What else changes; the status only by default. */
  readonly change?: Change | undefined
  /** The event's message. */
  readonly message?: string | null | undefined
}

/** What a transition found when it did not apply. */
export class TransitionRefused extends Schema.TaggedError<TransitionRefused>()("TransitionRefused", {
  id: JobId,
  found: JobStatusSchema,
  workerId: Schema.NullOr(Schema.String),
  /** The job is external (`tracking: "external"`): it has no holder, so the refusal is about its status. */
  external: Schema.Boolean
}) {}

/** The claim `completeMany` makes in the same statement, for the slots its completions free (`job_claim`'s, started). */
export interface NextClaim {
  readonly queues: ReadonlyArray<string>
  readonly names?: ReadonlyArray<string> | undefined
  /** At most this many jobs; 0 claims none. */
  readonly limit: number
  readonly leaseMs: number
  /** The caller's clock: the leases count from it. */
  readonly now: Date
}

/** One completion of `completeMany`. */
export interface CompletionItem {
  readonly id: JobId
  readonly resultJson: string
  readonly message: string | null
}

/** The holder's fail: see `Transitions.failAttempt`. */
export interface AttemptFailure {
  readonly workerId?: string | undefined
  /** The caller's clock: the retry's backoff counts from it. */
  readonly now: Date
  readonly code: string | null
  readonly error: string
  readonly retryable: boolean
  readonly message?: string | null | undefined
  /** 0–1: where the retry delay falls between half and all of the job's backoff. */
  readonly jitter: number
}

/**
 * The single changes of a job (lifecycle transitions, the holder's fail, group completes), each one call of a writer
 * function of sql/functions (`job_transition`, `job_complete_many`) that locks the job, compare-and-sets its status
 * and version and writes the event of that version. What they write is handed to this process's subscribers
 * (`LocalEvents`) once committed. `SqlError`s and bad answers are defects here.
 */
export class Transitions extends Effect.Service<Transitions>()("jobwatch/Transitions", {
  dependencies: [JobsRepo.Default, LocalEvents.Default],
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const repo = yield* JobsRepo
    const local = yield* LocalEvents
    const { schema } = yield* JobWatchConfig
    const transitionFunction = sql(`${schema}.job_transition`)
    const completeClaimFunction = sql(`${schema}.job_complete_claim`)
    const completeManyFunction = sql(`${schema}.job_complete_many`)

    /** The changed job; its event goes to this process's subscribers (see `LocalEvents.publishCommitted`). */
    const announce = (job: JobRecord, event: EventRecord) => {
      count(job, event)
      const row = jobRowOf(job)
      return Effect.as(local.publishCommitted(() => toJobEvent(eventRowOf(event, row.result, row.artefacts))), toJobInfo(row))
    }

    /** The arguments of `job_transition` that each change uses (the others are null). */
    const changeArguments = (change: Change) => ({
      result: change.kind === "complete" ? change.resultJson : null,
      code: "code" in change ? change.code : null,
      error: "error" in change ? change.error : null,
      delayMs: change.kind === "retry" ? change.delayMs : null,
      retryable: change.kind === "attempt_failed" ? change.retryable : null,
      now: change.kind === "attempt_failed" ? change.now : null,
      jitter: change.kind === "attempt_failed" ? change.jitter : null
    })

    /**
     * The transition primitive: in one call of `job_transition`, lock the job, compare-and-set its status, move it
     * to its next version and insert the event of that version (whose trigger rings the doorbell).
     */
    const transition = (t: Transition): Effect.Effect<JobInfo, JobNotFound | TransitionRefused> => {
      const from = t.from ?? (t.to === undefined ? [] : allowedFrom(t.to))
      const change = t.change ?? { kind: "status" }
      const a = changeArguments(change)
      return sql`
        SELECT ${transitionFunction}(${t.id}::uuid, ${change.kind}::text, ${t.to ?? null}::text, ${from}::text[],
          ${t.owner ?? null}::text, ${t.workerId ?? null}::text, ${t.message ?? null}::text, ${a.result}::jsonb,
          ${a.code}::text, ${a.error}::text, ${a.delayMs}::float8, ${a.retryable}::boolean, ${a.now}::timestamptz,
          ${a.jitter}::float8) AS found`.pipe(
        Effect.flatMap((rows) => decodeFound(rows[0]?.found ?? null)),
        Effect.orDie,
        Effect.flatMap((found): Effect.Effect<JobInfo, JobNotFound | TransitionRefused> => {
          if (found === null) return new JobNotFound({ id: t.id })
          if (found.job === undefined || found.event === undefined) {
            return new TransitionRefused({
              id: t.id,
              found: found.foundStatus,
              workerId: found.foundWorker,
              external: found.foundExternal === true
            })
          }
          return announce(found.job, found.event)
        })
      )
    }

    /**
     * As `transition`, with a refusal reported as `NotJobHolder` when `t.workerId` acts on a job another worker (or
     * none) holds, else as `InvalidTransition` from the status found.
     */
    const transitionOrInvalid = (t: Transition & { readonly to: JobStatus }) =>
      transition(t).pipe(
        Effect.catchTag("TransitionRefused", (refused): Effect.Effect<never, InvalidTransition | NotJobHolder> =>
          t.workerId !== undefined && !refused.external &&
            (refused.found === "claimed" || refused.found === "running") && refused.workerId !== t.workerId
            ? Effect.fail(new NotJobHolder({ id: t.id, workerId: t.workerId }))
            : Effect.fail(new InvalidTransition({ id: t.id, from: refused.found, to: t.to })))
      )

    type Holder = { readonly workerId?: string | undefined; readonly message?: string | null | undefined }

    /** claimed → running. */
    const start = (id: JobId, options: Holder = {}) =>
      transitionOrInvalid({
        id,
        to: "running",
        workerId: options.workerId,
        change: { kind: "start" },
        message: options.message
      })

    /** claimed|running → completed with `resultJson` (JSON text); progress ends at 100. */
    const complete = (id: JobId, options: Holder & { readonly resultJson: string }) =>
      transitionOrInvalid({
        id,
        to: "completed",
        workerId: options.workerId,
        change: { kind: "complete", resultJson: options.resultJson },
        message: options.message
      })

    /**
     * `complete` for many jobs of one worker in one statement (one commit, one doorbell): the worker loop's group
     * commit. Answers, per input item and in its order, whether the job completed or why not, and the jobs `next`
     * claimed (for `workerId`, started) in the same statement: a worker's completions and its next claim are one
     * round trip. Rows are locked in id order, so concurrent batches cannot deadlock on each other.
     */
    const completeAndClaim = (
      workerId: string | undefined,
      items: ReadonlyArray<CompletionItem>,
      next?: NextClaim
    ): Effect.Effect<{
      readonly answers: ReadonlyArray<Either.Either<JobId, InvalidTransition | NotJobHolder | JobNotFound>>
      readonly claimed: ReadonlyArray<ClaimedRow>
    }> =>
      Effect.gen(function*() {
        if (items.length === 0 && (next === undefined || next.limit <= 0)) return { answers: [], claimed: [] }
        const claim = next !== undefined && next.limit > 0 && workerId !== undefined ? next : undefined
        const ids = items.map((i) => i.id)
        const results = items.map((i) => i.resultJson)
        const messages = items.map((i) => i.message)
        // without a claim, job_complete_many: its plan is kept, where job_complete_claim's is made on every call
        const answer = yield* (claim === undefined
          ? sql`
          SELECT json_build_object('answers', ${completeManyFunction}(${workerId ?? null}::text, ${ids}::uuid[],
            ${results}::text[], ${messages}::text[], ${allowedFrom("completed")}::text[]), 'claimed', NULL) AS answer`
          : sql`
          SELECT ${completeClaimFunction}(${workerId ?? null}::text, ${ids}::uuid[], ${results}::text[],
            ${messages}::text[], ${allowedFrom("completed")}::text[], ${claim.queues}::text[],
            ${claim.names ?? null}::text[], ${claim.limit}::int, ${claim.leaseMs ?? null}::int,
            ${claim.now ?? null}::timestamptz) AS answer`).pipe(Effect.flatMap(decodeCompletedClaimed), Effect.orDie)
        const byId = new Map(answer.answers.map((row) => [row.id, row]))
        const answers: Array<Either.Either<JobId, InvalidTransition | NotJobHolder | JobNotFound>> = []
        for (const item of items) {
          const row = byId.get(item.id)
          if (row === undefined) {
            answers.push(Either.left(new JobNotFound({ id: item.id })))
          } else if (row.event !== null) {
            if (typeof row.queue === "string") recordChange(row.queue, row.foundStatus, "completed", row.runSeconds ?? undefined)
            yield* local.publishCommitted(() => toJobEvent(eventRowOf(eventOf(row), row.result, row.artefacts)))
            answers.push(Either.right(item.id))
          } else if (
            workerId !== undefined && (row.foundStatus === "claimed" || row.foundStatus === "running") &&
            row.foundWorker !== workerId
          ) {
            answers.push(Either.left(new NotJobHolder({ id: item.id, workerId })))
          } else {
            answers.push(Either.left(new InvalidTransition({ id: item.id, from: row.foundStatus, to: "completed" })))
          }
        }
        for (const r of answer.claimed) recordChange(r.queue, "pending", r.status, secondsBetween(r.scheduled_at, r.claimed_at))
        return { answers, claimed: answer.claimed.map(claimedRowOf) }
      })

    /** `completeAndClaim` claiming nothing. */
    const completeMany = (workerId: string | undefined, items: ReadonlyArray<CompletionItem>) =>
      Effect.map(completeAndClaim(workerId, items), (done) => done.answers)

    /** claimed|running → failed, for good. */
    const fail = (id: JobId, options: Holder & { readonly code: string | null; readonly error: string }) =>
      transitionOrInvalid({
        id,
        to: "failed",
        workerId: options.workerId,
        change: { kind: "fail", code: options.code, error: options.error },
        message: options.message
      })

    /**
     * claimed|running → scheduled (or pending when `delayMs` is 0): the attempt failed and another one follows.
     * The worker lets go of the job; the error of the attempt stays on the job and in the event.
     */
    const retry = (
      id: JobId,
      options: Holder & { readonly delayMs: number; readonly code: string | null; readonly error: string }
    ) =>
      transitionOrInvalid({
        id,
        to: options.delayMs > 0 ? "scheduled" : "pending",
        workerId: options.workerId,
        change: { kind: "retry", delayMs: options.delayMs, code: options.code, error: options.error },
        message: options.message
      })

    /** claimed|running → canceled: the worker acknowledges a cancel request (or gives the job up as canceled). */
    const markCanceled = (id: JobId, options: Holder = {}) =>
      transitionOrInvalid({
        id,
        to: "canceled",
        workerId: options.workerId,
        change: { kind: "finish" },
        message: options.message
      })

    /**
     * Cancel: a job nobody holds (scheduled|pending) is canceled at once; a held one (claimed|running) gets
     * `cancel_requested` and its worker ends it; a terminal one is `InvalidTransition`.
     */
    const cancel = (
      id: JobId,
      options: { readonly owner?: string | undefined; readonly message?: string | undefined } = {}
    ): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> => {
      const held = (status: JobStatus) => status === "claimed" || status === "running"
      const requestCancel = transition({
        id,
        from: ["claimed", "running"],
        owner: options.owner,
        change: { kind: "request_cancel" },
        message: options.message
      }).pipe(
        // already requested: nothing changes
        Effect.catchTag("TransitionRefused", (again): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> =>
          held(again.found) ? repo.get(id, options.owner) : new InvalidTransition({ id, from: again.found, to: "canceled" }))
      )
      return transition({
        id,
        to: "canceled",
        from: ["scheduled", "pending"],
        owner: options.owner,
        change: { kind: "finish" },
        message: options.message
      }).pipe(
        Effect.catchTag("TransitionRefused", (refused): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> =>
          held(refused.found) ? requestCancel : new InvalidTransition({ id, from: refused.found, to: "canceled" }))
      )
    }

    /** scheduled|pending → deleted; a job a worker holds (or a terminal one) is `InvalidTransition`. */
    const remove = (id: JobId, options: { readonly owner?: string | undefined; readonly message?: string | undefined } = {}) =>
      transitionOrInvalid({
        id,
        to: "deleted",
        owner: options.owner,
        change: { kind: "finish" },
        message: options.message
      })

    /**
     * The holder's fail: another attempt after the job's backoff when `retryable`, not canceled and attempts remain
     * (the rule is `job_attempt_end`'s), else `failed` for good.
     */
    const failAttempt = (id: JobId, options: AttemptFailure) =>
      transitionOrInvalid({
        id,
        to: "failed",
        from: ["claimed", "running"],
        workerId: options.workerId,
        change: {
          kind: "attempt_failed",
          retryable: options.retryable,
          now: options.now,
          jitter: options.jitter,
          code: options.code,
          error: options.error
        },
        message: options.message
      })

    return {
      transition,
      transitionOrInvalid,
      start,
      complete,
      completeMany,
      completeAndClaim,
      fail,
      failAttempt,
      retry,
      markCanceled,
      cancel,
      remove
    } as const
  })
}) {}
