import { Duration, Effect, Option, Stream } from "effect"
import type { EnqueueBody } from "./Api.js"
import { CompletionWatcher } from "./CompletionWatcher.js"
import { JobWatchConfig } from "./Config.js"
import { checkWorker, CurrentUser, Forbidden } from "./Domain/Auth.js"
import { InvalidInput, JobNotFound } from "./Domain/Errors.js"
import type { JobsPurged } from "./Domain/Job.js"
import { EventStream } from "./Streams/EventStream.js"
import type { EnqueueOptions, PurgeOptions } from "./Jobs.js"
import { Jobs } from "./Jobs.js"
import { Shutdown } from "./Http/Shutdown.js"
import { ReleaseResult } from "./Domain/Worker.js"
import * as V from "./internal/validate.js"
import { Workers } from "./Workers.js"
import type { WebhookChanges, WebhookInput } from "./Webhooks.js"
import { Webhooks } from "./Webhooks.js"
import { WebhookList } from "./Domain/Webhook.js"

/** A number of seconds from a request: finite and at least `min`, else `InvalidInput` naming `field`. */
const seconds = (field: string, value: number | undefined, min = 0) =>
  value === undefined
    ? Effect.succeed(undefined)
    : Number.isFinite(value) && value >= min
    ? Effect.succeed(Duration.millis(Math.round(value * 1000)))
    : Effect.fail(new InvalidInput({ field, message: `must be a number of seconds of at least ${min}, got ${value}` }))

/** The service's names of duration fields, as the API spells them (in seconds). */
const apiField = (field: string) => field.replace(/(^|\.)(delay|maxDelay|timeout)$/, "$1$2Seconds")

/** An enqueue body (seconds) as the service's options (durations), owned by `owner`. */
const enqueueOptions = (body: EnqueueBody, owner: string, prefix = "") =>
  Effect.gen(function*() {
    const backoff = body.backoff === undefined ? undefined : {
      delay: yield* seconds(`${prefix}backoff.delaySeconds`, body.backoff.delaySeconds),
      maxDelay: yield* seconds(`${prefix}backoff.maxDelaySeconds`, body.backoff.maxDelaySeconds),
      multiplier: body.backoff.multiplier
    }
    return {
      name: body.name,
      queue: body.queue,
      payload: body.payload,
      priority: body.priority,
      runAt: body.runAt,
      delay: yield* seconds(`${prefix}delaySeconds`, body.delaySeconds),
      maxAttempts: body.maxAttempts,
      timeout: yield* seconds(`${prefix}timeoutSeconds`, body.timeoutSeconds, 0.001),
      idempotencyKey: body.idempotencyKey,
      webhookUrl: body.webhookUrl,
      webhookSecret: body.webhookSecret,
      owner,
      backoff
    } satisfies EnqueueOptions
  })

/** `InvalidInput` naming the field as the request spells it. */
const renameFields = (rename: (field: string) => string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) =>
    error instanceof InvalidInput && rename(error.field) !== error.field
      ? new InvalidInput({ field: rename(error.field), message: error.message.replace(error.field, rename(error.field)) })
      : error)

const afterVersionOf = (value: number | undefined) =>
  value === undefined || (Number.isInteger(value) && value >= 0)
    ? Effect.succeed(value)
    : Effect.fail(new InvalidInput({ field: "afterVersion", message: `must be a non-negative integer, got ${value}` }))

/**
 * The worker operations need the `worker` role (or `admin`), and a worker token acts only as the worker ids it may
 * use (`User.mayActAs`): on every surface, since the HTTP API and the RPC group both come here.
 */
const asWorker = (workerId: string) => Effect.flatMap(CurrentUser, (user) => checkWorker(user, workerId))

export interface WaitOptions {
  /** Seconds to wait (capped by `maxWait`): until terminal, or until the version passes `afterVersion`. */
  readonly wait?: number | undefined
  readonly afterVersion?: number | undefined
}

export interface UpdateInput {
  readonly workerId: string
  readonly status: "running" | "completed" | "failed" | "canceled"
  readonly result?: unknown
  readonly error?: { readonly code?: string | undefined; readonly message: string; readonly retryable?: boolean | undefined } | undefined
  readonly message?: string | undefined
}

/**
 * What the HTTP API and the RPC group do, once: the caller (`CurrentUser`) decides whose jobs it sees (its own; an
 * admin's: all) and whether it may act as a worker. Inputs are the wire's (seconds, not durations).
 */
export class Operations extends Effect.Service<Operations>()("jobwatch/Operations", {
  effect: Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const watcher = yield* CompletionWatcher
    const streams = yield* EventStream
    const hooks = yield* Webhooks
    const config = yield* JobWatchConfig
    const maxWaitSeconds = Math.floor(Duration.toSeconds(config.maxWait))
    // the server's drain (none when a host serves the routes itself): waits answer now, streams end
    const draining = Option.match(yield* Effect.serviceOption(Shutdown), {
      onNone: () => Effect.never,
      onSome: (shutdown) => shutdown.draining
    })

    /**
     * Reads a job with `read`; with a wait of N seconds, answers when it is terminal (or, with `afterVersion`, when
     * its version passed it), or when N seconds passed. The wait holds no database connection.
     */
    const longPoll = <A extends { readonly version: number; readonly terminal: boolean }, E, R>(
      id: string,
      read: Effect.Effect<A, E, R>,
      options: WaitOptions
    ) =>
      Effect.gen(function*() {
        const afterVersion = yield* afterVersionOf(options.afterVersion)
        const wait = Math.min(options.wait ?? 0, maxWaitSeconds)
        if (!Number.isFinite(wait) || wait < 0) return yield* new InvalidInput({ field: "wait", message: "must be a number of seconds of at least 0" })
        const first = yield* read
        if (wait === 0) return first
        if (afterVersion === undefined ? first.terminal : first.version > afterVersion || first.terminal) return first
        const change = afterVersion === undefined
          ? watcher.waitFor(id).pipe(Effect.asVoid)
          : watcher.changes(id, afterVersion).pipe(Effect.asVoid)
        // the job was found: a failure of the wait (deleted meanwhile) shows in the final read; a drain answers the
        // current state as a timed-out wait does
        yield* change.pipe(Effect.timeoutOption(Duration.seconds(wait)), Effect.ignore, Effect.raceFirst(draining))
        return yield* read
      })

    const webhookOwner = Effect.map(CurrentUser, (user) => user.ownerScope)

    return {
      maxWaitSeconds,
      webhooks: {
        list: Effect.flatMap(webhookOwner, (owner) => Effect.map(hooks.list(owner), (webhooks) => WebhookList.make({ webhooks }))),
        create: (input: WebhookInput) => Effect.flatMap(CurrentUser, (user) => hooks.create(user.sub, input)),
        get: (id: string) => Effect.flatMap(webhookOwner, (owner) => hooks.get(id, owner)),
        update: (id: string, input: WebhookChanges) => Effect.flatMap(webhookOwner, (owner) => hooks.update(id, owner, input)),
        remove: (id: string) => Effect.flatMap(webhookOwner, (owner) => hooks.remove(id, owner)),
        rotateSecret: (id: string) => Effect.flatMap(webhookOwner, (owner) => hooks.rotateSecret(id, owner)),
        deliveries: (id: string, page: number | undefined, limit: number | undefined) =>
          Effect.flatMap(webhookOwner, (owner) => hooks.deliveries(id, owner, { page, limit }))
      },
      enqueue: (body: EnqueueBody) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          return yield* jobs.enqueue(yield* enqueueOptions(body, user.sub)).pipe(renameFields(apiField))
        }),
      enqueueBatch: (items: ReadonlyArray<EnqueueBody>) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          if (!Array.isArray(items) || items.length === 0 || items.length > config.maxBatchSize) {
            return yield* new InvalidInput({ field: "jobs", message: `must hold 1 to ${config.maxBatchSize} jobs` })
          }
          const options = yield* Effect.forEach(items, (job, i) => enqueueOptions(job, user.sub, `jobs[${i}].`))
          return yield* jobs.enqueueBatch(options).pipe(renameFields(apiField))
        }),
      get: (id: string, options: WaitOptions = {}) =>
        Effect.flatMap(CurrentUser, (user) => longPoll(id, jobs.get(id, { owner: user.ownerScope }), options)),
      status: (id: string, options: WaitOptions = {}) =>
        Effect.flatMap(CurrentUser, (user) => longPoll(id, jobs.status(id, { owner: user.ownerScope }), options)),
      list: (params: {
        readonly status?: string | undefined
        readonly queue?: string | undefined
        readonly name?: string | undefined
        readonly page?: number | undefined
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
      }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const filter = { status: params.status, queue: params.queue, name: params.name, owner: user.ownerScope }
          if (params.cursor !== undefined) {
            return yield* jobs.listByCursor({ ...filter, cursor: params.cursor, limit: params.limit })
          }
          return yield* jobs.list({ ...filter, page: params.page, limit: params.limit })
        }),
      waitMany: (ids: ReadonlyArray<string>, mode: "all" | "any", timeoutSeconds: number | undefined) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const timeout = (yield* seconds("timeoutSeconds", timeoutSeconds)) ?? config.maxWait
          const options = { mode, timeout: Duration.min(timeout, config.maxWait), owner: user.ownerScope }
          // a drain answers the current state, timed out
          return yield* Effect.raceFirst(
            watcher.waitMany(ids, options),
            Effect.zipRight(draining, watcher.waitMany(ids, { ...options, timeout: 0 }))
          )
        }),
      /** The terminal outcome of one of the caller's jobs. */
      waitFor: (id: string) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          if (!(yield* jobs.exists(id, { owner: user.ownerScope }))) return yield* new JobNotFound({ id })
          return yield* watcher.waitFor(id)
        }),
      /** The terminal outcomes of the caller's jobs `ids`, in order (all, or the first to end). */
      waitForMany: (ids: ReadonlyArray<string>, mode: "all" | "any") =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          // checks every id (and that they are the caller's) before waiting without a time limit
          yield* watcher.waitMany(ids, { mode, timeout: 0, owner: user.ownerScope })
          return mode === "all" ? yield* watcher.waitForAll(ids) : [yield* watcher.waitForFirst(ids)]
        }),
      cancel: (id: string) => Effect.flatMap(CurrentUser, (user) => jobs.cancel(id, { owner: user.ownerScope })),
      remove: (id: string) =>
        Effect.flatMap(CurrentUser, (user) => jobs.delete(id, { owner: user.ownerScope })).pipe(
          // only a worker acting on a job it does not hold gets NotJobHolder; a user never acts as one
          Effect.catchTag("NotJobHolder", Effect.die)
        ),
      /** Purges finished jobs by filter: an admin's operation (`Forbidden` otherwise). */
      purge: (options: PurgeOptions) =>
        Effect.flatMap(CurrentUser, (user): Effect.Effect<JobsPurged, InvalidInput | Forbidden> =>
          user.isAdmin
            ? jobs.purge(options)
            : Effect.fail(new Forbidden({ message: "purging jobs needs the admin role", required: "admin" }))),
      claim: (workerId: string, body: {
        readonly queues?: ReadonlyArray<string> | undefined
        readonly names?: ReadonlyArray<string> | undefined
        readonly limit?: number | undefined
        readonly waitSeconds?: number | undefined
        readonly start?: boolean | undefined
        readonly heartbeatSeconds?: number | undefined
      }) =>
        Effect.gen(function*() {
          yield* asWorker(workerId)
          const wait = yield* seconds("waitSeconds", body.waitSeconds)
          const heartbeat = yield* seconds("heartbeatSeconds", body.heartbeatSeconds, 0.1)
          return yield* workers.claim(workerId, {
            queues: body.queues,
            names: body.names,
            limit: body.limit,
            wait: wait === undefined ? undefined : Duration.min(wait, config.maxWait),
            start: body.start,
            heartbeatInterval: heartbeat,
            until: draining
          })
        }),
      release: (workerId: string, ids: ReadonlyArray<string> | undefined) =>
        Effect.gen(function*() {
          yield* asWorker(workerId)
          if (ids !== undefined && (!Array.isArray(ids) || ids.length > 1000)) {
            return yield* new InvalidInput({ field: "ids", message: "must list at most 1,000 job ids" })
          }
          const jobIds = ids === undefined ? undefined : yield* Effect.forEach(ids, (id, i) => V.jobId(id, `ids[${i}]`))
          const released = yield* workers.release(workerId, jobIds)
          return ReleaseResult.make({ released: released.map((job) => ({ id: job.id, status: job.status })) })
        }),
      heartbeat: (workerId: string) => Effect.zipRight(asWorker(workerId), workers.heartbeat(workerId)),
      update: (id: string, body: UpdateInput) =>
        Effect.gen(function*() {
          yield* asWorker(body.workerId)
          const scope = { workerId: body.workerId, message: body.message }
          switch (body.status) {
            case "running":
              return yield* workers.start(id, scope)
            case "completed":
              return yield* workers.complete(id, { ...scope, result: body.result })
            case "canceled":
              return yield* workers.canceled(id, scope)
            case "failed": {
              if (body.error === undefined) {
                return yield* new InvalidInput({ field: "error", message: "is required when status is failed" })
              }
              return yield* workers.fail(id, {
                ...scope,
                code: body.error.code,
                error: body.error.message,
                retryable: body.error.retryable
              }).pipe(renameFields((field) => field === "error" ? "error.message" : field === "code" ? "error.code" : field))
            }
          }
        }),
      progress: (id: string, body: {
        readonly workerId: string
        readonly percent: number
        readonly step?: string | undefined
        readonly message?: string | undefined
        readonly data?: unknown
        readonly force?: boolean | undefined
      }) =>
        Effect.zipRight(
          asWorker(body.workerId),
          workers.progress(id, {
            percent: body.percent,
            step: body.step,
            message: body.message,
            data: body.data,
            force: body.force
          }, { workerId: body.workerId })
        ),
      jobEvents: (id: string, options: { readonly afterVersion?: number | undefined; readonly cursor?: string | undefined }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const events = yield* streams.jobEvents(id, {
            owner: user.ownerScope,
            afterVersion: yield* afterVersionOf(options.afterVersion),
            cursor: options.cursor
          })
          // a drain ends the stream; the client resumes elsewhere from its last cursor
          return Stream.interruptWhen(events, draining)
        }),
      userEvents: (
        filter: { readonly status?: string | undefined; readonly queue?: string | undefined; readonly name?: string | undefined },
        cursor: string | undefined
      ) =>
        Effect.flatMap(CurrentUser, (user) =>
          Effect.map(streams.userEvents({ ...filter, owner: user.ownerScope }, cursor), Stream.interruptWhen(draining)))
    } as const
  })
}) {}
