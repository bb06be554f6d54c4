import type { DateTime } from "effect"
import type { ParseResult } from "effect"
import { Duration, Effect, Either, Option, Schema } from "effect"
import { JobWatchConfig } from "./Config.js"
import type { InvalidTransition } from "./Domain/Errors.js"
import { InvalidInput, JobNotFound, PayloadTooLarge } from "./Domain/Errors.js"
import type { JobInfo } from "./Domain/Job.js"
import { JobCursorPage, JobPage, JobRef, JobsPurged, JobStatusInfo, Pagination } from "./Domain/Job.js"
import type { JobId } from "./Domain/JobId.js"
import { makeJobId } from "./Domain/JobId.js"
import { defaultBackoff } from "./Domain/Worker.js"
import type { TerminalStatus } from "./Domain/JobStatus.js"
import { isTerminal } from "./Domain/JobStatus.js"
import type { TraceContext } from "./Domain/TraceContext.js"
import { isTraceparent, Propagation, traceparentOf } from "./Domain/TraceContext.js"
import { isStorableText } from "./Domain/Values.js"
import type { EnqueueOptions as RequestEnqueueOptions } from "./Domain/Requests.js"
import {
  EnqueueOptions as EnqueueOptionsSchema,
  JobIdFromString,
  NameText,
  PageNumber,
  PurgeLimit,
  RunAtInput,
  StatusFilter
} from "./Domain/Requests.js"
import { decodeField, invalidOf, jsonValue } from "./internal/invalid.js"
import { checkTarget, secretProblem } from "./Webhooks.js"
import type { ListFilter, NewJob } from "./Jobs/JobsRepo.js"
import { JobsRepo } from "./Jobs/JobsRepo.js"
import { PurgeRepo } from "./Jobs/PurgeRepo.js"
import { Transitions } from "./Jobs/Transitions.js"
import { recordEnqueued } from "./Metrics/jobs.js"

export { JobsRepo } from "./Jobs/JobsRepo.js"
export { PurgeRepo } from "./Jobs/PurgeRepo.js"
export type { ListFilter, NewJob } from "./Jobs/JobsRepo.js"
export { Transitions, TransitionRefused } from "./Jobs/Transitions.js"
export type { AttemptFailure, Change, Transition } from "./Jobs/Transitions.js"

/**
 * What a job is enqueued with: `EnqueueBody`'s fields (`Domain/Requests.ts`, the same bounds) with durations as
 * `Duration.DurationInput`s, `runAt` as a `Date`, a `DateTime` or an ISO-8601 text, and the `owner`.
 * - `name` (1–200 characters), `queue` (default `default`), `payload` (any JSON value, at most `maxPayloadBytes`)
 * - `priority` (higher runs first; default 0), `runAt` or `delay` (not both), `maxAttempts` (default 1), `timeout`
 * - `idempotencyKey`: the same owner and key answer the existing job instead of creating another
 * - `backoff`: failed attempts are retried after `min(maxDelay, delay × multiplier^(attempt − 1))`, jittered between
 *   half and all of it (defaults: 1 s, 1 h, 2; a `delay` of 0 retries at once)
 * - `webhookUrl` receives the job's `job.completed` or `job.failed` webhook (not into a private network unless
 *   allowed, 422 otherwise); `webhookSecret` (`whsec_` and the base64 of 24 to 64 bytes) signs it, never answered back
 * - `traceparent` (and `tracestate`): the W3C trace context the job is created in, which the worker's span links to;
 *   default: this call's span when the process exports traces (`Traces.Propagation`), else none
 */
export type EnqueueOptions = RequestEnqueueOptions

export interface ListOptions {
  /** Canonical statuses or their aliases (`queued`, `active`, `IN_PROGRESS`, …), one or several. */
  readonly status?: string | ReadonlyArray<string> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly owner?: string | undefined
  /** 1-based; default 1. */
  readonly page?: number | undefined
  /** Default `defaultPageSize`, at most `maxPageSize`. */
  readonly limit?: number | undefined
}

/** Restricts an operation to one owner's jobs: another owner's job is `JobNotFound`. */
export interface OwnerScope {
  readonly owner?: string | undefined
}

/**
 * The filter of a listing or a stream: statuses or their aliases (a list, or comma-separated), queue, name and owner;
 * `InvalidInput` naming the field otherwise.
 */
const decodeStatuses = decodeField(StatusFilter, "status")
const decodeName = { queue: decodeField(NameText, "queue"), name: decodeField(NameText, "name"), owner: decodeField(NameText, "owner") }
const decodePage = decodeField(PageNumber, "page")
const decodeId = (field = "id") => decodeField(JobIdFromString, field)
const jobIdOf = decodeId()

export const filterOf = (options: Omit<ListOptions, "page" | "limit">) =>
  Effect.gen(function*() {
    const terms = options.status === undefined ? "" : typeof options.status === "string" ? options.status : options.status.join(",")
    const statuses = terms.trim() === "" ? [] : yield* decodeStatuses(terms)
    const text = (field: keyof typeof decodeName) =>
      options[field] === undefined ? Either.right(undefined) : decodeName[field](options[field])
    return {
      statuses: statuses.length === 0 ? undefined : [...statuses],
      queue: yield* text("queue"),
      name: yield* text("name"),
      owner: yield* text("owner")
    } satisfies ListFilter
  })

/** Which finished jobs an admin purges; every field narrows. */
export interface PurgeOptions {
  /** Finished statuses or their aliases (`successful`, `cancelled`, …), one or several; default all four. */
  readonly status?: string | ReadonlyArray<string> | undefined
  readonly queue?: string | undefined
  readonly owner?: string | undefined
  /** Only jobs that finished before this. */
  readonly finishedBefore?: Date | DateTime.DateTime | string | undefined
  /** The most jobs one call purges: 1 to 10,000, default 1,000. */
  readonly limit?: number | undefined
}

const INT32 = 2 ** 31 - 1

/** Jobs per purge statement. */
const PURGE_BATCH = 1000
const decodeFinishedBefore = decodeField(RunAtInput, "finishedBefore")
const decodePurgeLimit = decodeField(PurgeLimit, "limit")

const decodeSchema = Schema.decodeUnknownEither(EnqueueOptionsSchema)
type DecodedOptions = typeof EnqueueOptionsSchema.Type

/** A text field `EnqueueOptions` takes as it is (`NameText`: 1–200 characters, not blank, storable). */
const plainText = (value: unknown) =>
  value === undefined ||
  (typeof value === "string" && value.length > 0 && value.length <= 200 && value.trim() !== "" && isStorableText(value))
const plainFields: Record<string, (value: unknown) => boolean> = {
  name: (value) => value !== undefined && plainText(value),
  queue: plainText,
  owner: plainText,
  idempotencyKey: plainText,
  // its depth, size and storability are checked as it is serialised
  payload: () => true,
  priority: (value) => value === undefined || (Number.isSafeInteger(value) && Math.abs(value as number) <= INT32),
  maxAttempts: (value) =>
    value === undefined || (Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= 1000),
  traceparent: (value) => value === undefined || isTraceparent(value)
}

/**
 * `options` decoded: a job of only plain fields (name, queue, owner, key, payload, priority, attempts: what a batch
 * mostly holds) is what the schema would answer, checked field by field (the schema's decode of 1,000 jobs was most
 * of a batch's time in JavaScript); anything else, and every refusal, goes through the schema.
 */
const decodeOptions = (options: EnqueueOptions): Either.Either<DecodedOptions, ParseResult.ParseError> => {
  if (typeof options === "object" && options !== null && !Array.isArray(options)) {
    let plain = true
    for (const key in options) {
      const check = plainFields[key]
      if (check === undefined || !check(options[key as keyof EnqueueOptions])) {
        plain = false
        break
      }
    }
    if (plain && options.name !== undefined) return Either.right(options as DecodedOptions)
  }
  return decodeSchema(options)
}
const millis = (d: Duration.Duration | undefined, fallback: number) => (d === undefined ? fallback : Duration.toMillis(d))

/** Enqueue, read, list, cancel and delete jobs. */
export class Jobs extends Effect.Service<Jobs>()("jobwatch/Jobs", {
  dependencies: [JobsRepo.Default, Transitions.Default, PurgeRepo.Default],
  effect: Effect.gen(function*() {
    const repo = yield* JobsRepo
    const transitions = yield* Transitions
    const purgeRepo = yield* PurgeRepo
    const config = yield* JobWatchConfig
    const propagating = yield* Propagation

    // synchronous: a 1,000-job batch is checked in a few milliseconds. The schema holds the fixed bounds; the
    // payload's size is the configuration's, and a secret's byte count needs decoding its base64
    type Checked = Either.Either<NewJob, InvalidInput | PayloadTooLarge>
    const validate = (options: EnqueueOptions, prefix: string, traced: TraceContext | undefined): Checked => {
      const decoded = decodeOptions(options)
      if (Either.isLeft(decoded)) return Either.left(invalidOf(decoded.left, prefix, prefix === "" ? "job" : prefix.slice(0, -1)))
      return prepare(decoded.right, prefix, traced)
    }

    /**
     * A decoded job, checked against the configuration (payload size, secret), with its new id, and the trace context
     * it was given, or else `traced` (the enqueue's span's).
     */
    const prepare = (job: DecodedOptions, prefix: string, traced: TraceContext | undefined): Checked => {
      const payloadJson = jsonValue(`${prefix}payload`, job.payload, config.maxPayloadBytes)
      if (Either.isLeft(payloadJson)) return Either.left(payloadJson.left)
      const secret = job.webhookSecret === undefined ? "" : secretProblem(job.webhookSecret)
      if (secret !== "") return Either.left(new InvalidInput({ field: `${prefix}webhookSecret`, message: secret }))
      const delayMs = millis(job.backoff?.delay, defaultBackoff.delayMs)
      return Either.right({
        id: makeJobId(),
        name: job.name,
        queue: job.queue ?? "default",
        owner: job.owner ?? null,
        payloadJson: payloadJson.right,
        priority: job.priority ?? 0,
        runAt: job.runAt ?? null,
        delayMs: job.delay === undefined ? null : Duration.toMillis(job.delay),
        maxAttempts: job.maxAttempts ?? 1,
        timeoutMs: job.timeout === undefined ? null : Math.ceil(Duration.toMillis(job.timeout)),
        idempotencyKey: job.idempotencyKey ?? null,
        backoff: {
          delayMs,
          maxDelayMs: millis(job.backoff?.maxDelay, Math.max(defaultBackoff.maxDelayMs, delayMs)),
          multiplier: job.backoff?.multiplier ?? defaultBackoff.multiplier
        },
        webhookUrl: job.webhookUrl ?? null,
        webhookSecret: job.webhookSecret ?? null,
        external: job.tracking === "external",
        traceparent: job.traceparent ?? traced?.traceparent,
        tracestate: job.traceparent === undefined ? traced?.tracestate : job.tracestate
      })
    }

    /** The trace context of the enqueue's own span, when this process exports spans (`Traces.Propagation`). */
    const tracedContext: Effect.Effect<TraceContext | undefined> = propagating
      ? Effect.map(Effect.option(Effect.currentSpan), (span) =>
        Option.isSome(span) ? { traceparent: traceparentOf(span.value) } : undefined)
      : Effect.succeed(undefined)

    const insertBatch = <A>(
      batch: ReadonlyArray<A>,
      check: (job: A, prefix: string, traced: TraceContext | undefined) => Checked
    ) =>
      Effect.gen(function*() {
        if (!Array.isArray(batch) || batch.length === 0 || batch.length > config.maxBatchSize) {
          return yield* new InvalidInput({
            field: "jobs",
            message: `must hold 1 to ${config.maxBatchSize} jobs, got ${Array.isArray(batch) ? batch.length : "none"}`
          })
        }
        const valid: Array<NewJob> = []
        const traced = yield* tracedContext
        for (let i = 0; i < batch.length; i++) {
          const job = check(batch[i]!, `jobs[${i}].`, traced)
          if (Either.isLeft(job)) return yield* Effect.fail(job.left)
          valid.push(job.right)
        }
        // only the jobs with a callback URL: a fiber for each of 1,000 jobs without one cost ~10 ms a batch
        const callbacks = valid.flatMap((job, i) => (job.webhookUrl === null ? [] : [{ job, i }]))
        yield* Effect.forEach(callbacks, ({ i, job }) => checkCallback(job, `jobs[${i}].`), { concurrency: 8, discard: true })
        // the same key twice in one batch: the first one creates, the others answer it
        const firstByKey = new Map<string, number>()
        const unique: Array<NewJob> = []
        const origin: Array<number> = []
        const slot = valid.map((job, n) => {
          const key = job.idempotencyKey === null ? undefined : `${job.owner ?? ""}\u0000${job.idempotencyKey}`
          const seen = key === undefined ? undefined : firstByKey.get(key)
          if (seen !== undefined) return seen
          if (key !== undefined) firstByKey.set(key, unique.length)
          origin.push(n)
          return unique.push(job) - 1
        })
        const refs = yield* repo.insert(unique)
        recordEnqueued(refs)
        return slot.map((i, n) => origin[i] === n ? refs[i]! : JobRef.make({ ...refs[i]!, existing: true }))
      })

    const enqueueBatch = Effect.fn("Jobs.enqueueBatch", { kind: "producer" })(function*(batch: ReadonlyArray<EnqueueOptions>) {
      return yield* insertBatch(batch, validate)
    })

    /**
     * `enqueueBatch` for a surface whose schema decoded the batch already (the HTTP API's `EnqueueBatchBody`): the
     * jobs are not decoded a second time, only checked against the configuration (payload size, secrets, callbacks).
     */
    const enqueueBatchDecoded = Effect.fn("Jobs.enqueueBatch", { kind: "producer" })(function*(batch: ReadonlyArray<DecodedOptions>) {
      return yield* insertBatch(batch, prepare)
    })

    /** The job's own callback URL, resolved: not into a private network unless allowed. */
    const checkCallback = (job: NewJob, prefix: string) =>
      job.webhookUrl === null
        ? Effect.void
        : Effect.asVoid(checkTarget(`${prefix}webhookUrl`, job.webhookUrl, config.webhookAllowPrivate))

    const enqueue = Effect.fn("Jobs.enqueue", { kind: "producer" })(function*(options: EnqueueOptions) {
      const job = yield* validate(options, "", yield* tracedContext)
      yield* checkCallback(job, "")
      const refs = yield* repo.insert([job])
      recordEnqueued(refs)
      const [ref] = refs
      return ref!
    })

    const get = Effect.fn("Jobs.get")(function*(id: string, scope: OwnerScope = {}) {
      return yield* repo.get(yield* jobIdOf(id), scope.owner)
    })

    const status = Effect.fn("Jobs.status")(function*(id: string, scope: OwnerScope = {}) {
      const row = yield* repo.status(yield* jobIdOf(id), scope.owner)
      return JobStatusInfo.make({ ...row, terminal: isTerminal(row.status) })
    })

    const exists = Effect.fn("Jobs.exists")(function*(id: string, scope: OwnerScope = {}) {
      return yield* repo.exists(yield* jobIdOf(id), scope.owner)
    })

    // the page size's bound is the configuration's (the schemas' is its ceiling)
    const decodeLimit = decodeField(Schema.Int.pipe(Schema.between(1, config.maxPageSize)), "limit")
    const limitOf = (limit: number | undefined) =>
      limit === undefined ? Either.right(config.defaultPageSize) : decodeLimit(limit)

    /** A page of jobs, newest first, with the total count. */
    const list = Effect.fn("Jobs.list")(function*(options: ListOptions = {}) {
      const filter = yield* filterOf(options)
      const page = options.page === undefined ? 1 : yield* decodePage(options.page)
      const limit = yield* limitOf(options.limit)
      const { jobs, total } = yield* repo.listPage(filter, page, limit)
      return JobPage.make({
        jobs,
        pagination: Pagination.make({ total, page, limit, pages: Math.ceil(total / limit) })
      })
    })

    /** Keyset paging for deep lists: pass the `nextCursor` of a page back as `cursor`. */
    const listByCursor = Effect.fn("Jobs.listByCursor")(function*(
      options: Omit<ListOptions, "page"> & { readonly cursor?: string | undefined } = {}
    ) {
      const filter = yield* filterOf(options)
      const limit = yield* limitOf(options.limit)
      const before = options.cursor === undefined || options.cursor === ""
        ? undefined
        : yield* decodeId("cursor")(Buffer.from(String(options.cursor), "base64url").toString("utf8")).pipe(
          Effect.mapError(() => new InvalidInput({ field: "cursor", message: "is not a cursor this API returned" }))
        )
      const { jobs, last } = yield* repo.listAfter(filter, before, limit)
      return JobCursorPage.make({
        jobs,
        nextCursor: Option.match(last, {
          onNone: () => null,
          onSome: (id) => Buffer.from(id, "utf8").toString("base64url")
        })
      })
    })

    const cancel = Effect.fn("Jobs.cancel")(function*(id: string, scope: OwnerScope = {}) {
      return yield* transitions.cancel(yield* jobIdOf(id), { owner: scope.owner })
    })

    /** Purges a finished job: answers its last state; `JobNotFound` if it went meanwhile. */
    const purgeOne = (id: JobId, owner: string | undefined) =>
      Effect.gen(function*() {
        const last = yield* repo.get(id, owner)
        const purged = yield* purgeRepo.purge({ ids: [id], owner }, 1)
        return purged.length === 1 ? last : yield* new JobNotFound({ id })
      })

    /**
     * A scheduled or pending job is marked `deleted` (an event its waiters see); a finished one is purged, with its
     * events and webhook deliveries, and answered as it was; one a worker holds is `InvalidTransition`.
     */
    const remove = Effect.fn("Jobs.delete")(function*(id: string, scope: OwnerScope = {}) {
      const jobId = yield* jobIdOf(id)
      return yield* transitions.remove(jobId, { owner: scope.owner }).pipe(
        Effect.catchTag("InvalidTransition", (refused): Effect.Effect<JobInfo, JobNotFound | InvalidTransition> =>
          isTerminal(refused.from) ? purgeOne(jobId, scope.owner) : Effect.fail(refused))
      )
    })

    /** Purges finished jobs matching `options`, oldest finished first, up to its limit, 1,000 per statement. */
    const purge = Effect.fn("Jobs.purge")(function*(options: PurgeOptions = {}) {
      const filter = yield* filterOf({ status: options.status, queue: options.queue, owner: options.owner })
      const statuses: Array<TerminalStatus> = []
      for (const status of filter.statuses ?? []) {
        if (!isTerminal(status)) {
          return yield* new InvalidInput({
            field: "status",
            message: `must name finished statuses (completed, failed, canceled, deleted), not ${status}`
          })
        }
        statuses.push(status)
      }
      const before = options.finishedBefore === undefined ? undefined : yield* decodeFinishedBefore(options.finishedBefore)
      const limit = options.limit === undefined ? PURGE_BATCH : yield* decodePurgeLimit(options.limit)
      const where = { before, owner: filter.owner, queue: filter.queue, statuses: statuses.length === 0 ? undefined : statuses }
      let purged = 0
      while (purged < limit) {
        const batch = Math.min(PURGE_BATCH, limit - purged)
        const removed = yield* purgeRepo.purge(where, batch)
        purged += removed.length
        if (removed.length < batch) return JobsPurged.make({ purged, more: false })
        yield* Effect.yieldNow()
      }
      return JobsPurged.make({ purged, more: true })
    })

    return {
      enqueue,
      enqueueBatch,
      enqueueBatchDecoded,
      get,
      status,
      exists,
      list,
      listByCursor,
      cancel,
      delete: remove,
      purge
    } as const
  })
}) {}
