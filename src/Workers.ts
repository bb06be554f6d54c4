import { Clock, Duration, Effect, Random } from "effect"
import { JobWatchConfig } from "./Config.js"
import { InvalidInput, WorkerNotFound } from "./Domain/Errors.js"
import type { JobId } from "./Domain/JobId.js"
import type { ClaimedJob } from "./Domain/Worker.js"
import { HeartbeatResult } from "./Domain/Worker.js"
import { jsonValueTooDeep, MAX_JSON_DEPTH } from "./Domain/Values.js"
import { jsonValue } from "./internal/invalid.js"
import { Transitions } from "./Jobs.js"
import { ClaimWaiters } from "./Workers/ClaimWaiters.js"
import { Listener } from "./EventLog.js"
import type { ProgressReport } from "./Workers/ProgressReporter.js"
import { ProgressReporter } from "./Workers/ProgressReporter.js"
import { claimedJobOf, ClaimsRepo } from "./Workers/ClaimsRepo.js"
import type { ClaimedRow } from "./Workers/ClaimsRepo.js"
import { Artefacts, decodeArtefacts } from "./Workers/Artefacts.js"
import type { ArtefactInput } from "./Domain/Job.js"
import { JobsRepo } from "./Jobs/JobsRepo.js"
import { recordClaimed } from "./Metrics/jobs.js"
import {
  codeOf, errorOf, heartbeatOf, jobIdOf, limitOf, MAX_COMPLETE_MANY, messageOf, namesOf, noteOf, queuesOf, retryableOf,
  waitOf, workerIdOf
} from "./Workers/inputs.js"

export type { ClaimOptions, CompleteItem, FailOptions, WorkerScope } from "./Workers/inputs.js"
import type { ClaimOptions, CompleteItem, FailOptions, WorkerScope } from "./Workers/inputs.js"

/**
 * The worker protocol: claim (optionally waiting for work), heartbeat, and end the jobs a worker holds. Only the
 * holder may start, complete, fail or acknowledge the cancellation of a job (`NotJobHolder` otherwise).
 */
export class Workers extends Effect.Service<Workers>()("jobwatch/Workers", {
  dependencies: [
    Transitions.Default,
    ClaimsRepo.Default,
    ProgressReporter.Default,
    ClaimWaiters.Default,
    Listener.Default,
    Artefacts.Default,
    JobsRepo.Default
  ],
  scoped: Effect.gen(function*() {
    const transitions = yield* Transitions
    const claims = yield* ClaimsRepo
    const reporter = yield* ProgressReporter
    const waiters = yield* ClaimWaiters
    const listener = yield* Listener
    const artefactsRepo = yield* Artefacts
    const jobsRepo = yield* JobsRepo
    const config = yield* JobWatchConfig
    const artefactsOf = (value: ReadonlyArray<ArtefactInput> | undefined) =>
      value === undefined ? Effect.succeed(undefined) : decodeArtefacts(value)
    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

    /**
     * The claimed jobs a worker can be sent. A payload nested deeper than `MAX_JSON_DEPTH` levels (stored before
     * that limit held) overflows the stack of whatever encodes the answer, after the claim committed, taking the
     * other jobs of the claim down with it: such a job fails at once (`undeliverable`, no retry: no worker could
     * ever receive it), and the others are answered.
     */
    const deliverable = <J extends ClaimedRow>(workerId: string, jobs: ReadonlyArray<J>) => {
      const poisoned = jobs.filter((job) => jsonValueTooDeep(job.payload, MAX_JSON_DEPTH))
      if (poisoned.length === 0) return Effect.succeed(jobs)
      return Effect.flatMap(now, (at) =>
        Effect.forEach(poisoned, (job) =>
          transitions.failAttempt(job.id, {
            workerId,
            code: "undeliverable",
            error: `its payload nests deeper than ${MAX_JSON_DEPTH} levels: no worker can be sent it`,
            retryable: false,
            now: at,
            jitter: 0
          }).pipe(
            Effect.tapError((error) =>
              Effect.logWarning(`could not fail undeliverable job ${job.id}: ${error._tag}`).pipe(
                Effect.annotateLogs({ module: "Workers", jobId: job.id })
              )),
            Effect.ignore
          ), { discard: true })).pipe(Effect.as(jobs.filter((job) => !poisoned.includes(job))))
    }

    /** Releases the jobs of a claim whose caller went away before it was answered. */
    const giveBack = (workerId: string, jobs: ReadonlyArray<ClaimedJob>) =>
      claims.release(workerId, jobs.map((job) => job.id)).pipe(
        Effect.tap((released) => Effect.logInfo(`a claim of worker ${workerId} was interrupted: released ${released.length} jobs`)),
        Effect.catchAllCause((cause) => Effect.logWarning("could not release the jobs of an interrupted claim", cause)),
        Effect.annotateLogs("module", "Workers")
      )

    /**
     * Takes up to `limit` pending jobs of the worker's queues (priority, then oldest first) under a lease. With
     * `wait`, when none is ready it waits until one is (or the wait ends) and answers what it then claims.
     */
    const claim = Effect.fn("Workers.claim")(function*(workerId: string, options: ClaimOptions = {}) {
      const worker = yield* workerIdOf(workerId)
      const queues = options.queues === undefined ? ["default"] : yield* queuesOf(options.queues)
      const names = options.names === undefined ? undefined : yield* namesOf(options.names)
      const limit = options.limit === undefined ? 1 : yield* limitOf(options.limit)
      const waitMs = options.wait === undefined ? 0 : Duration.toMillis(yield* waitOf(options.wait))
      const heartbeatMs = Duration.toMillis(
        options.heartbeatInterval === undefined ? config.heartbeatInterval : yield* heartbeatOf(options.heartbeatInterval)
      )
      const claimOnce = Effect.flatMap(now, (at) =>
        claims.claim({
          workerId: worker,
          queues,
          names,
          limit,
          leaseMs: Math.round(heartbeatMs * 1.5),
          heartbeatIntervalMs: heartbeatMs,
          now: at,
          start: options.start === true
        })).pipe(
          Effect.tap((jobs) => Effect.sync(() => recordClaimed(jobs))),
          Effect.flatMap((jobs) => deliverable(worker, jobs)),
          Effect.map((jobs) => jobs.map((job) => claimedJobOf(job, heartbeatMs)))
        )
      return yield* waiters.claim({
        keys: new Set(queues),
        claimOnce,
        waitMs,
        until: options.until,
        giveBack: (jobs) => giveBack(worker, jobs)
      })
    })

    /** Marks the worker alive, extends the leases of its jobs, and answers its jobs whose cancellation was requested. */
    const heartbeat = Effect.fn("Workers.heartbeat")(function*(workerId: string) {
      const worker = yield* workerIdOf(workerId)
      const result = yield* claims.heartbeat(worker, yield* now)
      if (!result.known) return yield* new WorkerNotFound({ workerId: worker })
      return HeartbeatResult.make({ cancelRequested: result.cancelRequested })
    })

    const scopeOf = (scope: WorkerScope) =>
      Effect.gen(function*() {
        return {
          workerId: scope.workerId === undefined ? undefined : yield* workerIdOf(scope.workerId),
          message: yield* messageOf(scope.message)
        }
      })

    /** claimed → running. */
    const start = Effect.fn("Workers.start")(function*(id: string, scope: WorkerScope = {}) {
      return yield* transitions.start(yield* jobIdOf()(id), yield* scopeOf(scope))
    })

    /** Reports progress (throttled; see `ProgressReporter`, which traces the writes: a span per report would cost more than the report). */
    const progress = Effect.fnUntraced(function*(
      id: string,
      report: ProgressReport,
      scope: { readonly workerId?: string | undefined } = {}
    ) {
      const workerId = scope.workerId === undefined ? undefined : yield* workerIdOf(scope.workerId)
      return yield* reporter.progress(yield* jobIdOf()(id), report, { workerId })
    })

    /**
     * claimed|running (an external job: pending too) → completed with `result`, and `artefacts` attached in the same
     * transaction; pending progress is written first.
     */
    const complete = Effect.fn("Workers.complete")(function*(
      id: string,
      options: WorkerScope & { readonly result?: unknown; readonly artefacts?: ReadonlyArray<ArtefactInput> | undefined } = {}
    ) {
      const jobId = yield* jobIdOf()(id)
      const scope = yield* scopeOf(options)
      const resultJson = yield* jsonValue("result", options.result, config.maxPayloadBytes)
      const artefacts = yield* artefactsOf(options.artefacts)
      yield* reporter.flush(jobId)
      return yield* artefactsRepo.withArtefacts(jobId, artefacts, scope.workerId, transitions.complete(jobId, { ...scope, resultJson }))
    })

    /**
     * Attaches artefacts to a job that runs (claimed or running; an external job: pending too): one of a name the
     * job has replaces it. The job's next version, with a `job.progress` event whose `data` is `{ artefacts }`.
     */
    const attach = Effect.fn("Workers.attach")(function*(
      id: string,
      artefacts: ReadonlyArray<ArtefactInput>,
      scope: { readonly workerId?: string | undefined } = {}
    ) {
      const jobId = yield* jobIdOf()(id)
      const workerId = scope.workerId === undefined ? undefined : yield* workerIdOf(scope.workerId)
      return yield* artefactsRepo.attach(jobId, yield* decodeArtefacts(artefacts), workerId)
    })

    /**
     * For a caller that names no worker (a worker token reporting by id alone, over HTTP or RPC): only an external
     * job may be reported on so; any other has a holder, which must say who it is.
     */
    const requireExternal = Effect.fn("Workers.requireExternal")(function*(id: string) {
      const jobId = yield* jobIdOf()(id)
      if (yield* jobsRepo.isExternal(jobId)) return
      return yield* new InvalidInput({
        field: "workerId",
        message: "is required: jobwatch's workers claim this job (tracking queue); only an external job is reported on by id alone"
      })
    })

    /** The items of a `completeMany`, checked (invalid input fails the whole call), their pending progress written. */
    const completionsOf = Effect.fnUntraced(function*(items: ReadonlyArray<CompleteItem>) {
      if (!Array.isArray(items) || items.length === 0 || items.length > MAX_COMPLETE_MANY) {
        return yield* new InvalidInput({ field: "items", message: "must be a list of 1 to 1,000 jobs" })
      }
      const seen = new Set<JobId>()
      const validated: Array<{ id: JobId; resultJson: string; message: string | null }> = []
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        const id = yield* jobIdOf(`items[${i}].id`)(item?.id)
        if (seen.has(id)) return yield* new InvalidInput({ field: `items[${i}].id`, message: `job ${id} is listed twice` })
        seen.add(id)
        validated.push({
          id,
          resultJson: yield* jsonValue(`items[${i}].result`, item.result, config.maxPayloadBytes),
          message: yield* noteOf(`items[${i}].message`)(item.message)
        })
      }
      yield* Effect.forEach(validated, (item) => reporter.flush(item.id), { discard: true })
      return validated
    })

    /**
     * `complete` for up to 1,000 jobs of one worker in one statement (one commit): a worker's group commit. Answers
     * per item, in input order, the job's id or why it was not completed (`NotJobHolder`, `InvalidTransition`,
     * `JobNotFound`); invalid input fails the whole call and changes nothing.
     */
    const completeMany = Effect.fn("Workers.completeMany")(function*(
      workerId: string,
      items: ReadonlyArray<CompleteItem>
    ) {
      const worker = yield* workerIdOf(workerId)
      return yield* transitions.completeMany(worker, yield* completionsOf(items))
    })

    /**
     * `completeMany` and, in the same statement (one round trip, one commit), a claim of up to `claim.limit` jobs
     * (started at once, as `claim` with `start`) for the slots the completions free: `Worker.run`'s group commit.
     * It does not wait for work, nor register the worker: a worker the service does not know claims nothing here.
     */
    const completeAndClaim = Effect.fn("Workers.completeAndClaim")(function*(
      workerId: string,
      items: ReadonlyArray<CompleteItem>,
      claim: Omit<ClaimOptions, "wait" | "start" | "until">
    ) {
      const worker = yield* workerIdOf(workerId)
      const completions = yield* completionsOf(items)
      const queues = claim.queues === undefined ? ["default"] : yield* queuesOf(claim.queues)
      const names = claim.names === undefined ? undefined : yield* namesOf(claim.names)
      const limit = claim.limit === undefined ? 1 : claim.limit === 0 ? 0 : yield* limitOf(claim.limit)
      const heartbeatMs = Duration.toMillis(
        claim.heartbeatInterval === undefined ? config.heartbeatInterval : yield* heartbeatOf(claim.heartbeatInterval)
      )
      const done = yield* transitions.completeAndClaim(worker, completions, {
        queues,
        names,
        limit,
        leaseMs: Math.round(heartbeatMs * 1.5),
        now: yield* now
      })
      const claimed = (yield* deliverable(worker, done.claimed)).map((job) => claimedJobOf(job, heartbeatMs))
      return { answers: done.answers, claimed }
    })

    /**
     * The attempt failed: another one follows after the job's backoff when `retryable` (the default) and attempts
     * remain, else the job ends `failed`. Pending progress is written first.
     */
    const fail = Effect.fn("Workers.fail")(function*(id: string, options: FailOptions) {
      const jobId = yield* jobIdOf()(id)
      const scope = yield* scopeOf(options)
      const code = (yield* codeOf(options.code)) ?? null
      const error = yield* errorOf(options.error)
      const retryable = yield* retryableOf(options.retryable ?? true)
      const artefacts = yield* artefactsOf(options.artefacts)
      if (options.progress !== undefined) {
        yield* reporter.progress(jobId, { percent: options.progress, force: true }, { workerId: scope.workerId }).pipe(
          Effect.catchTag("ProgressRegression", () => Effect.void)
        )
      }
      yield* reporter.flush(jobId)
      return yield* artefactsRepo.withArtefacts(jobId, artefacts, scope.workerId, transitions.failAttempt(jobId, {
        ...scope,
        code,
        error,
        retryable,
        now: yield* now,
        jitter: yield* Random.next
      }))
    })

    /** claimed|running → canceled: the worker stopped the job (after a cancel request, or of its own accord). */
    const canceled = Effect.fn("Workers.canceled")(function*(id: string, scope: WorkerScope = {}) {
      const jobId = yield* jobIdOf()(id)
      yield* reporter.flush(jobId)
      return yield* transitions.markCanceled(jobId, yield* scopeOf(scope))
    })

    /** Lets go of the worker's held jobs (`ids`, or all) without using up their attempts: back to `pending`. */
    const release = Effect.fn("Workers.release")(function*(workerId: string, ids?: ReadonlyArray<JobId>) {
      const worker = yield* workerIdOf(workerId)
      if (ids !== undefined) yield* Effect.forEach(ids, reporter.flush, { discard: true })
      return yield* claims.release(worker, ids)
    })

    /**
     * Calls `handler` at once (in the LISTEN connection's callback) with the ids of jobs whose cancellation was just
     * requested, or with `"*"` when there were too many to list (ask `heartbeat`), until the scope closes.
     */
    const onCancelRequested = (handler: (ids: ReadonlyArray<JobId> | "*") => void) =>
      listener.on("cancel", (payload) => handler(payload === "*" ? "*" : (payload.split(",") as Array<JobId>)))

    return {
      claim, heartbeat, start, progress, complete, completeMany, completeAndClaim, fail, canceled, release, attach,
      requireExternal, onCancelRequested
    } as const
  })
}) {}
