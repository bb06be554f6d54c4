/**
 * The job library's client: a `JobManager` for a room, a `Map` of the job types this client registered, whose
 * `listen()` gives the tasks it serves as they come (a long-poll claim: no polling), each with `run()`. Effect
 * (`JobManager.make`: `Effect`s and a `Stream`) and plain TypeScript (`JobManager.open`: `Promise`s and
 * `for await`). Browser-safe: no Node builtin.
 */
import { FetchHttpClient, HttpApiClient } from "@effect/platform"
import type { HttpClient } from "@effect/platform"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, JSONSchema, Option, Schedule, Schema, Stream } from "effect"
import { Api } from "../Api.js"
import type { JobInfo } from "../Domain/Job.js"
import type { JobType } from "../Domain/JobLib.js"
import { JobId } from "../Domain/JobId.js"
import type { ClaimedJob } from "../Domain/Worker.js"
import { defaultWorkerId, describeFailure } from "../Workers/runtime.js"
import type { ClientOptions } from "./options.js"
import { authenticate, subOf } from "./options.js"

/** What a handler is given beside its payload. */
export interface TaskContext {
  readonly task: ClaimedJob
  /** Reports progress: percent (0–100, never backwards), with an optional step and message. */
  readonly progress: (
    percent: number,
    options?: { readonly step?: string | undefined; readonly message?: string | undefined }
  ) => Effect.Effect<void>
}

/** A job type's payload schema: an Effect `Schema` (turned into JSON Schema, and decoding the payload) or a JSON Schema. */
export type PayloadSchema<A> = Schema.Schema<A, any> | { readonly [key: string]: unknown }

export interface Registration<A> {
  /** `<public|private>:<category>:<name>` */
  readonly name: string
  readonly schema: PayloadSchema<A>
  readonly handler: (payload: A, context: TaskContext) => Effect.Effect<unknown, unknown>
  /** The room to register it for: the manager's by default, `@global` for every room. */
  readonly room?: string | undefined
  readonly maxAttempts?: number | undefined
}

/** A registered job type, as this client holds it. */
export interface RegisteredJobType {
  readonly name: string
  readonly room: string
  readonly jobType: JobType
  readonly jsonSchema: unknown
}

export interface JobManagerOptions extends ClientOptions {
  readonly room: string
  /** The worker this client is: default `<sub>:<host>-<pid>-<random>` of the token's `sub`. */
  readonly workerId?: string | undefined
  /** How often it heartbeats (its tasks' leases last 1.5 × this); the service's default when unset. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** How long one claim waits for a task (default 20 s, under the service's worker timeout). */
  readonly claimWait?: Duration.DurationInput | undefined
}

/** A task this client claimed: `run` executes its handler and reports how it ended; answers the task as it ended. */
export interface Task {
  readonly id: string
  readonly name: string
  readonly room: string
  readonly payload: unknown
  readonly claimed: ClaimedJob
  readonly run: Effect.Effect<JobInfo, unknown>
}

interface Entry {
  readonly registered: RegisteredJobType
  readonly registration: Registration<any>
  readonly decode: ((payload: unknown) => Effect.Effect<unknown, unknown>) | undefined
}

const isSchema = <A>(schema: PayloadSchema<A>): schema is Schema.Schema<A, any> => Schema.isSchema(schema)

const makeClient = (options: ClientOptions) =>
  HttpApiClient.make(Api, { baseUrl: options.baseUrl, transformClient: authenticate(options) })
type ApiClient = Effect.Effect.Success<ReturnType<typeof makeClient>>
type UpdatePayload = Parameters<ApiClient["joblib"]["updateTask"]>[0]["payload"]

/** Transport trouble (and an overloaded or unavailable service) is retried; the service's refusals are not. */
const transient = (error: unknown) => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  return tag === "RequestError" || tag === "ResponseError" || tag === "DatabaseUnavailable" || tag === "TooManyRequests"
}

/**
 * A `JobManager` for a room (Effect): `register` job types (a `Map` of them by name), `listen()` for their tasks.
 * Needs an `HttpClient` (`FetchHttpClient.layer` in a browser; `JobManager.open` provides it).
 */
export class JobManager implements ReadonlyMap<string, RegisteredJobType> {
  private readonly entries_ = new Map<string, Entry>()
  private constructor(
    private readonly client: ApiClient,
    readonly room: string,
    readonly workerId: string,
    private readonly heartbeatSeconds: number | undefined,
    private readonly claimWait: Duration.Duration
  ) {}

  /** A manager for `options.room`, acting as worker `options.workerId` (default: under the token's `sub`). */
  static make(options: JobManagerOptions): Effect.Effect<JobManager, never, HttpClient.HttpClient> {
    return Effect.map(
      makeClient(options),
      (client) =>
        new JobManager(
          client,
          options.room,
          options.workerId ?? defaultWorkerId(options.token === undefined ? undefined : Option.getOrUndefined(subOf(options.token))),
          options.heartbeatInterval === undefined ? undefined : Duration.toSeconds(Duration.decode(options.heartbeatInterval)),
          options.claimWait === undefined ? Duration.seconds(20) : Duration.decode(options.claimWait)
        )
    )
  }

  /** The same manager for plain TypeScript: `Promise`s, `for await (const task of jobs.listen())`. */
  static open(options: JobManagerOptions): AsyncJobManager {
    return new AsyncJobManager(Effect.runSync(JobManager.make(options).pipe(Effect.provide(FetchHttpClient.layer))))
  }

  // ---- the Map of registered job types ----
  get size(): number {
    return this.entries_.size
  }
  get(name: string): RegisteredJobType | undefined {
    return this.entries_.get(name)?.registered
  }
  has(name: string): boolean {
    return this.entries_.has(name)
  }
  /** Forgets `name` here (its tasks claimed later fail with `not_registered`); `unregister` also tells the service. */
  delete(name: string): boolean {
    return this.entries_.delete(name)
  }
  keys(): MapIterator<string> {
    return this.entries_.keys()
  }
  *values(): MapIterator<RegisteredJobType> {
    for (const entry of this.entries_.values()) yield entry.registered
  }
  *entries(): MapIterator<[string, RegisteredJobType]> {
    for (const [name, entry] of this.entries_) yield [name, entry.registered]
  }
  [Symbol.iterator](): MapIterator<[string, RegisteredJobType]> {
    return this.entries()
  }
  forEach(callback: (value: RegisteredJobType, key: string, map: ReadonlyMap<string, RegisteredJobType>) => void): void {
    for (const [name, value] of this.entries()) callback(value, name, this)
  }

  /**
   * Registers a job type for the room (or `registration.room`) with this client as its worker: a `Schema` is
   * turned into JSON Schema (draft 2020-12) and decodes each payload. Registering a name again with another
   * schema fails with `SchemaConflict`.
   */
  register<A>(registration: Registration<A>) {
    const jsonSchema = isSchema(registration.schema)
      ? JSONSchema.make(registration.schema, { target: "jsonSchema2020-12" })
      : registration.schema
    const room = registration.room ?? this.room
    const decode = isSchema(registration.schema) ? Schema.decodeUnknown(registration.schema) : undefined
    return this.client.joblib.register({
      path: { roomId: room },
      payload: { name: registration.name, schema: jsonSchema, workerId: this.workerId, maxAttempts: registration.maxAttempts }
    }).pipe(
      Effect.map((answer) => {
        const registered: RegisteredJobType = { name: registration.name, room, jobType: answer.jobType, jsonSchema }
        this.entries_.set(registration.name, { registered, registration, decode })
        return registered
      })
    )
  }

  /** Stops serving `name`: here, and on the service (a type no worker serves and no task waits for is removed). */
  unregister(name: string) {
    const entry = this.entries_.get(name)
    this.entries_.delete(name)
    return entry === undefined ? Effect.succeed(false) : this.client.joblib.unregister({
      path: { roomId: entry.registered.room, jobName: name, workerId: this.workerId }
    }).pipe(Effect.as(true))
  }

  /** The registrations again (the service forgot this worker after a silence longer than its worker timeout). */
  private readonly reregister = Effect.suspend(() =>
    Effect.forEach([...this.entries_.values()], (entry) => this.register(entry.registration), { discard: true })
  )

  private readonly heartbeat = Effect.suspend(() => this.client.joblib.heartbeat({ path: { workerId: this.workerId } }))

  /**
   * The tasks this client serves, as they come: each claim waits on the service for one (no polling). Transport
   * trouble is retried with backoff; a worker the service forgot registers its types again.
   */
  listen(): Stream.Stream<Task, unknown> {
    const claimOnce = this.client.joblib.claim({
      payload: {
        workerId: this.workerId,
        wait: this.claimWait,
        heartbeatInterval: this.heartbeatSeconds === undefined ? undefined : Duration.seconds(this.heartbeatSeconds)
      }
    }).pipe(
      Effect.map((answer) => answer.tasks),
      Effect.catchTag("WorkerNotFound", () => Effect.as(this.reregister, [])),
      Effect.retry({ while: transient, schedule: Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds"))) })
    )
    return Stream.repeatEffect(claimOnce).pipe(
      Stream.flattenIterables,
      Stream.map((claimed): Task => ({
        id: claimed.id,
        name: claimed.name,
        room: claimed.queue,
        payload: claimed.payload,
        claimed,
        run: this.run(claimed)
      }))
    )
  }

  private update(id: string, payload: Omit<UpdatePayload, "workerId">) {
    return this.client.joblib.updateTask({
      path: { taskId: JobId.make(id.toLowerCase(), { disableValidation: true }) },
      payload: { ...payload, workerId: this.workerId }
    })
  }

  /** Runs a claimed task's handler: started, heartbeated, its progress, and its end (completed, failed, canceled). */
  private run(task: ClaimedJob): Effect.Effect<JobInfo, unknown> {
    const self = this
    return Effect.gen(function*() {
      const entry = self.entries_.get(task.name)
      if (entry === undefined) {
        return yield* self.update(task.id, {
          status: "failed",
          error: { code: "not_registered", message: `${task.name} is not registered in this client`, retryable: false }
        })
      }
      yield* self.update(task.id, { status: "running" })
      const canceled = yield* Deferred.make<void>()
      const beatSeconds = task.heartbeatSeconds ?? self.heartbeatSeconds ?? 10
      const beats = yield* self.heartbeat.pipe(
        Effect.tap((answer) => answer.cancelRequested.includes(task.id) ? Deferred.succeed(canceled, undefined) : Effect.void),
        Effect.ignore,
        Effect.repeat(Schedule.spaced(Duration.seconds(beatSeconds))),
        Effect.delay(Duration.seconds(beatSeconds)),
        Effect.forkScoped
      )
      const context: TaskContext = {
        task,
        progress: (percent, options = {}) =>
          Effect.ignore(self.update(task.id, { progress: { percent, step: options.step, message: options.message } }))
      }
      const decoded = entry.decode === undefined ? Effect.succeed(task.payload) : entry.decode(task.payload).pipe(
        Effect.mapError((error) => ({ code: "invalid_payload", message: String(error), retryable: false }))
      )
      const ending = yield* Effect.raceFirst(
        Effect.exit(Effect.flatMap(decoded, (payload) => entry.registration.handler(payload, context))),
        Effect.as(Deferred.await(canceled), "canceled" as const)
      )
      yield* Fiber.interrupt(beats)
      if (ending === "canceled") return yield* self.update(task.id, { status: "canceled", message: "canceled on request" })
      if (Exit.isSuccess(ending)) return yield* self.update(task.id, { status: "completed", result: ending.value })
      const failure = Cause.failureOption(ending.cause)
      const described = Option.isSome(failure)
        ? describeFailure(failure.value)
        : { code: "defect", message: Cause.pretty(ending.cause).slice(0, 2000), retryable: true }
      return yield* self.update(task.id, { status: "failed", error: described })
    }).pipe(Effect.scoped)
  }
}

/** What a plain TypeScript handler is given beside its payload. */
export interface AsyncTaskContext {
  readonly task: ClaimedJob
  readonly progress: (percent: number, options?: { readonly step?: string; readonly message?: string }) => Promise<void>
  /** Aborted when the task is canceled (the handler should stop). */
  readonly signal: AbortSignal
}

export interface AsyncRegistration<A> {
  readonly name: string
  readonly schema: PayloadSchema<A>
  readonly handler: (payload: A, context: AsyncTaskContext) => unknown
  readonly room?: string | undefined
  readonly maxAttempts?: number | undefined
}

/** A claimed task, for plain TypeScript. */
export interface AsyncTask {
  readonly id: string
  readonly name: string
  readonly room: string
  readonly payload: unknown
  readonly claimed: ClaimedJob
  readonly run: () => Promise<JobInfo>
}

/** `JobManager` with `Promise`s and an async iterator of tasks (`JobManager.open`). */
export class AsyncJobManager implements ReadonlyMap<string, RegisteredJobType> {
  constructor(readonly effect: JobManager) {}
  get size() {
    return this.effect.size
  }
  get room() {
    return this.effect.room
  }
  get workerId() {
    return this.effect.workerId
  }
  get(name: string) {
    return this.effect.get(name)
  }
  has(name: string) {
    return this.effect.has(name)
  }
  delete(name: string) {
    return this.effect.delete(name)
  }
  keys() {
    return this.effect.keys()
  }
  values() {
    return this.effect.values()
  }
  entries() {
    return this.effect.entries()
  }
  [Symbol.iterator]() {
    return this.effect.entries()
  }
  forEach(callback: (value: RegisteredJobType, key: string, map: ReadonlyMap<string, RegisteredJobType>) => void) {
    for (const [name, value] of this.entries()) callback(value, name, this)
  }
  register<A>(registration: AsyncRegistration<A>): Promise<RegisteredJobType> {
    return Effect.runPromise(this.effect.register<A>({
      ...registration,
      handler: (payload, context) =>
        Effect.tryPromise({
          try: async (signal) =>
            registration.handler(payload, {
              task: context.task,
              signal,
              progress: (percent, options) => Effect.runPromise(context.progress(percent, options))
            }),
          catch: (error) => error
        })
    }))
  }
  unregister(name: string): Promise<boolean> {
    return Effect.runPromise(this.effect.unregister(name))
  }
  /** The tasks this client serves, as they come; `break` out of the loop to stop. */
  listen(): AsyncIterable<AsyncTask> {
    return Stream.toAsyncIterable(this.effect.listen().pipe(
      Stream.map((task): AsyncTask => ({ ...task, run: () => Effect.runPromise(task.run) }))
    ))
  }
}
