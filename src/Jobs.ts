import type { DateTime, Duration } from "effect"
import { Effect, Either, Option } from "effect"
import { JobWatchConfig } from "./Config.js"
import { InvalidInput } from "./Domain/Errors.js"
import { JobCursorPage, JobPage, JobRef, JobStatusInfo, Pagination } from "./Domain/Job.js"
import { makeJobId } from "./Domain/JobId.js"
import type { Backoff } from "./Domain/Worker.js"
import { defaultBackoff } from "./Domain/Worker.js"
import type { JobStatus } from "./Domain/JobStatus.js"
import { allStatuses, isTerminal, resolveStatus, statusAliases } from "./Domain/JobStatus.js"
import * as V from "./internal/validate.js"
import { checkTarget, secretProblem } from "./Webhooks/security.js"
import type { ListFilter, NewJob } from "./Jobs/JobsRepo.js"
import { JobsRepo } from "./Jobs/JobsRepo.js"
import { Transitions } from "./Jobs/Transitions.js"

export { JobsRepo } from "./Jobs/JobsRepo.js"
export type { ListFilter, NewJob } from "./Jobs/JobsRepo.js"
export { Transitions, TransitionRefused } from "./Jobs/Transitions.js"
export type { AttemptFailure, Change, Transition } from "./Jobs/Transitions.js"

/** What a job is enqueued with. */
export interface EnqueueOptions {
  /** What the job does (1–200 characters). */
  readonly name: string
  /** Default `default`. */
  readonly queue?: string | undefined
  /** Any JSON value, at most `maxPayloadBytes` (1 MiB by default) serialised. */
  readonly payload?: unknown
  /** Higher runs first; an integer, default 0. */
  readonly priority?: number | undefined
  /** When to run it (a future time makes it `scheduled`). Give `runAt` or `delay`, not both. */
  readonly runAt?: Date | DateTime.DateTime | string | undefined
  readonly delay?: Duration.DurationInput | undefined
  /** Attempts before it fails for good; default 1. */
  readonly maxAttempts?: number | undefined
  /** How long one attempt may run. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Who the job belongs to (the JWT `sub` on the HTTP API). */
  readonly owner?: string | undefined
  /** The same owner and key answer the existing job instead of creating another. */
  readonly idempotencyKey?: string | undefined
  /**
   * How failed attempts are retried: after `min(maxDelay, delay × multiplier^(attempt − 1))`, jittered between half
   * and all of it. Defaults: `delay` 1 s, `maxDelay` 1 h, `multiplier` 2. A `delay` of 0 retries at once.
   */
  /**
   * A URL of the job's own that receives its `job.completed` or `job.failed` webhook (as the seed system's per-job
   * callback); an http(s) URL that does not point into a private network (422 otherwise) unless allowed.
   */
  readonly webhookUrl?: string | undefined
  /**
   * Signs that callback as webhook endpoints are signed (Standard Webhooks): a secret of the caller's, `whsec_`
   * and the base64 of 24 to 64 bytes. It is kept with the job and never answered back; without it the callback
   * is unsigned. Needs `webhookUrl`.
   */
  readonly webhookSecret?: string | undefined
  readonly backoff?: {
    readonly delay?: Duration.DurationInput | undefined
    readonly maxDelay?: Duration.DurationInput | undefined
    readonly multiplier?: number | undefined
  } | undefined
}

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

const INT32 = 2 ** 31 - 1
const DAY_MS = 24 * 3600 * 1000
const WEEK_MS = 7 * DAY_MS
/** The furthest a job may be delayed, and the longest an attempt may be allowed to run. */
const MAX_DELAY_MS = 3653 * DAY_MS
const MAX_TIMEOUT_MS = 365 * DAY_MS

const atMost = (
  field: string,
  ms: Either.Either<number, InvalidInput>,
  max: number,
  label: string
): Either.Either<number, InvalidInput> =>
  Either.flatMap(ms, (n) => n <= max ? Either.right(n) : V.invalid(field, `must be at most ${label}`))

/** A job's retry backoff from its enqueue option (throws the `InvalidInput`, see `V.orThrow`). */
const backoffOf = (backoff: NonNullable<EnqueueOptions["backoff"]>, field: string): Backoff => {
  if (typeof backoff !== "object" || backoff === null) V.orThrow(V.invalid(field, "must be an object"))
  const ms = (name: string, value: unknown, fallback: number) => {
    if (value === undefined) return fallback
    const n = Math.round(V.orThrow(V.duration(`${field}.${name}`, value)))
    return n <= WEEK_MS ? n : V.orThrow(V.invalid(`${field}.${name}`, "must be at most 7 days"))
  }
  const delayMs = ms("delay", backoff.delay, defaultBackoff.delayMs)
  const maxDelayMs = ms("maxDelay", backoff.maxDelay, Math.max(defaultBackoff.maxDelayMs, delayMs))
  if (maxDelayMs < delayMs) V.orThrow(V.invalid(`${field}.maxDelay`, "must not be shorter than delay"))
  const multiplier = backoff.multiplier === undefined ? defaultBackoff.multiplier : backoff.multiplier
  if (typeof multiplier !== "number" || !Number.isFinite(multiplier) || multiplier < 1 || multiplier > 100) {
    V.orThrow(V.invalid(`${field}.multiplier`, `must be a number from 1 to 100, got ${V.preview(multiplier)}`))
  }
  return { delayMs, maxDelayMs, multiplier }
}

/**
 * The filter of a listing or a stream: statuses or their aliases (a list, or comma-separated), queue, name and owner;
 * `InvalidInput` naming the field otherwise.
 */
export const filterOf = (options: Omit<ListOptions, "page" | "limit">) =>
  Effect.gen(function*() {
    let statuses: Array<JobStatus> | undefined
    if (options.status !== undefined) {
      const terms = (typeof options.status === "string" ? options.status.split(",") : options.status)
        .map((term) => term.trim())
        .filter((term) => term !== "")
      statuses = []
      for (const term of terms) {
        const resolved = resolveStatus(term)
        if (resolved === undefined) {
          return yield* V.invalid(
            "status",
            `unknown status ${JSON.stringify(term)}; expected one of ${allStatuses.join(", ")} or an alias (${Object.keys(statusAliases).join(", ")})`
          )
        }
        statuses.push(...resolved)
      }
      if (statuses.length === 0) statuses = undefined
    }
    return {
      statuses,
      queue: options.queue === undefined ? undefined : yield* V.text("queue", options.queue, { max: 200 }),
      name: options.name === undefined ? undefined : yield* V.text("name", options.name, { max: 200 }),
      owner: options.owner === undefined ? undefined : yield* V.text("owner", options.owner, { max: 200 })
    } satisfies ListFilter
  })

/** The secret of a job's own callback: a Standard Webhooks secret, and only beside a `webhookUrl`. */
const callbackSecret = (field: string, value: unknown, url: unknown): Either.Either<string, InvalidInput> => {
  if (typeof value !== "string") return V.invalid(field, `must be a string, got ${V.preview(value)}`)
  if (url === undefined) return V.invalid(field, "needs webhookUrl: it signs the job's own callback")
  const problem = secretProblem(value)
  return problem === "" ? Either.right(value) : V.invalid(field, problem)
}

/** Enqueue, read, list, cancel and delete jobs. */
export class Jobs extends Effect.Service<Jobs>()("jobwatch/Jobs", {
  dependencies: [JobsRepo.Default, Transitions.Default],
  effect: Effect.gen(function*() {
    const repo = yield* JobsRepo
    const transitions = yield* Transitions
    const config = yield* JobWatchConfig

    // synchronous and generator-free: a 1,000-job batch is validated in a couple of milliseconds
    const validate = (options: EnqueueOptions, prefix: string): Either.Either<NewJob, V.Invalid> => {
      const f = (field: string) => `${prefix}${field}`
      if (typeof options !== "object" || options === null) return V.invalid(prefix || "job", "must be an object")
      if (options.runAt !== undefined && options.delay !== undefined) {
        return V.invalid(f("delay"), "give runAt or delay, not both")
      }
      try {
        return Either.right({
          id: makeJobId(),
          name: V.orThrow(V.text(f("name"), options.name, { max: 200 })),
          queue: options.queue === undefined ? "default" : V.orThrow(V.text(f("queue"), options.queue, { max: 200 })),
          owner: V.orThrow(V.optionalText(f("owner"), options.owner, 200)),
          payloadJson: V.orThrow(V.jsonValue(f("payload"), options.payload, config.maxPayloadBytes)),
          priority: options.priority === undefined
            ? 0
            : V.orThrow(V.integer(f("priority"), options.priority, -INT32, INT32)),
          runAt: options.runAt === undefined ? null : V.orThrow(V.instant(f("runAt"), options.runAt)),
          delayMs: options.delay === undefined ? null : V.orThrow(atMost(f("delay"), V.duration(f("delay"), options.delay), MAX_DELAY_MS, "10 years")),
          maxAttempts: options.maxAttempts === undefined
            ? 1
            : V.orThrow(V.integer(f("maxAttempts"), options.maxAttempts, 1, 1000)),
          timeoutMs: options.timeout === undefined
            ? null
            : Math.ceil(V.orThrow(atMost(f("timeout"), V.duration(f("timeout"), options.timeout, 1), MAX_TIMEOUT_MS, "365 days"))),
          idempotencyKey: V.orThrow(V.optionalText(f("idempotencyKey"), options.idempotencyKey, 200)),
          backoff: options.backoff === undefined ? defaultBackoff : backoffOf(options.backoff, f("backoff")),
          // checked (and resolved) by enqueue: the synchronous validation only sees it is a string
          webhookUrl: options.webhookUrl === undefined ? null : V.orThrow(V.text(f("webhookUrl"), options.webhookUrl, { max: 2000 })),
          webhookSecret: options.webhookSecret === undefined
            ? null
            : V.orThrow(callbackSecret(f("webhookSecret"), options.webhookSecret, options.webhookUrl))
        })
      } catch (error) {
        return V.caught(error)
      }
    }

    const enqueueBatch = Effect.fn("Jobs.enqueueBatch")(function*(batch: ReadonlyArray<EnqueueOptions>) {
      if (!Array.isArray(batch) || batch.length === 0 || batch.length > config.maxBatchSize) {
        return yield* V.invalid("jobs", `must hold 1 to ${config.maxBatchSize} jobs, got ${Array.isArray(batch) ? batch.length : "none"}`)
      }
      const valid: Array<NewJob> = []
      for (let i = 0; i < batch.length; i++) {
        const job = validate(batch[i]!, `jobs[${i}].`)
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
      return slot.map((i, n) => origin[i] === n ? refs[i]! : JobRef.make({ ...refs[i]!, existing: true }))
    })

    /** The job's own callback URL, resolved: not into a private network unless allowed. */
    const checkCallback = (job: NewJob, prefix: string) =>
      job.webhookUrl === null
        ? Effect.void
        : Effect.asVoid(checkTarget(`${prefix}webhookUrl`, job.webhookUrl, config.webhookAllowPrivate))

    const enqueue = Effect.fn("Jobs.enqueue")(function*(options: EnqueueOptions) {
      const job = yield* validate(options, "")
      yield* checkCallback(job, "")
      const [ref] = yield* repo.insert([job])
      return ref!
    })

    const get = Effect.fn("Jobs.get")(function*(id: string, scope: OwnerScope = {}) {
      return yield* repo.get(yield* V.jobId(id), scope.owner)
    })

    const status = Effect.fn("Jobs.status")(function*(id: string, scope: OwnerScope = {}) {
      const row = yield* repo.status(yield* V.jobId(id), scope.owner)
      return JobStatusInfo.make({ ...row, terminal: isTerminal(row.status) })
    })

    const exists = Effect.fn("Jobs.exists")(function*(id: string, scope: OwnerScope = {}) {
      return yield* repo.exists(yield* V.jobId(id), scope.owner)
    })

    const limitOf = (limit: number | undefined) =>
      limit === undefined ? Effect.succeed(config.defaultPageSize) : V.integer("limit", limit, 1, config.maxPageSize)

    /** A page of jobs, newest first, with the total count. */
    const list = Effect.fn("Jobs.list")(function*(options: ListOptions = {}) {
      const filter = yield* filterOf(options)
      const page = options.page === undefined ? 1 : yield* V.integer("page", options.page, 1, 1_000_000)
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
        : yield* V.jobId(Buffer.from(String(options.cursor), "base64url").toString("utf8"), "cursor").pipe(
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
      return yield* transitions.cancel(yield* V.jobId(id), { owner: scope.owner })
    })

    const remove = Effect.fn("Jobs.delete")(function*(id: string, scope: OwnerScope = {}) {
      return yield* transitions.remove(yield* V.jobId(id), { owner: scope.owner })
    })

    return {
      enqueue,
      enqueueBatch,
      get,
      status,
      exists,
      list,
      listByCursor,
      cancel,
      delete: remove
    } as const
  })
}) {}
