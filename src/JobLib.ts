import { Clock, DateTime, Duration, Effect, Either } from "effect"
import { JobWatchConfig } from "./Config.js"
import type { User } from "./Domain/Auth.js"
import { checkWorker, Forbidden } from "./Domain/Auth.js"
import { InvalidInput } from "./Domain/Errors.js"
import { makeJobId } from "./Domain/JobId.js"
import { Propagation, traceparentOf } from "./Domain/TraceContext.js"
import type { JobId } from "./Domain/JobId.js"
import {
  GLOBAL_ROOM,
  JobType,
  JobTypeList,
  JobTypeLimitReached,
  JobTypeNotFound,
  JobTypeRegistration,
  MAX_JOB_TYPES_PER_USER,
  parseJobTypeName,
  PayloadInvalid,
  SchemaConflict
} from "./Domain/JobLib.js"
import type { TaskUpdateBody } from "./Domain/JobLib.js"
import { defaultBackoff } from "./Domain/Worker.js"
import { jsonValue } from "./internal/invalid.js"
import { JobsRepo } from "./Jobs.js"
import { Workers } from "./Workers.js"
import { claimedJobOf, ClaimsRepo } from "./Workers/ClaimsRepo.js"
import { ClaimWaiters } from "./Workers/ClaimWaiters.js"
import type { JobTypeRow, Viewer } from "./JobLib/JobTypesRepo.js"
import { JobTypesRepo } from "./JobLib/JobTypesRepo.js"
import { makeJsonSchemas } from "./JobLib/JsonSchemas.js"
import { recordClaimed, recordEnqueued } from "./Metrics/jobs.js"

export { JobTypesRepo } from "./JobLib/JobTypesRepo.js"
export { digestOf } from "./JobLib/JsonSchemas.js"

const DEFAULT_LIST_LIMIT = 100

/** Who acts: the viewer of the repository's reads. */
const viewerOf = (user: User): Viewer => ({ sub: user.sub, admin: user.isAdmin })

/**
 * The job library's rule of worker ids: a user's own client acts as worker `<sub>` or `<sub>:<name>` with no role
 * (that system's workers are its users' clients, serving the types they registered); an admin as every worker.
 */
export const checkJobLibWorker = (user: User, workerId: string) => checkWorker(user, workerId, { role: false })

type TaskUpdate = typeof TaskUpdateBody.Type

/**
 * The job library: job types registered per room (or for every room, `@global`) with the JSON Schema of their
 * tasks' payloads; tasks pushed to rooms, validated against it; the workers that registered a type claim its tasks.
 * A task is an ordinary job (its queue the room, its name the type's), so every channel sees it.
 */
export class JobLib extends Effect.Service<JobLib>()("jobwatch/JobLib", {
  dependencies: [JobTypesRepo.Default, JobsRepo.Default, ClaimsRepo.Default, ClaimWaiters.Default, Workers.Default],
  effect: Effect.gen(function*() {
    const repo = yield* JobTypesRepo
    const jobs = yield* JobsRepo
    const claims = yield* ClaimsRepo
    const waiters = yield* ClaimWaiters
    const workers = yield* Workers
    const config = yield* JobWatchConfig
    const propagating = yield* Propagation
    const schemas = makeJsonSchemas()
    const heartbeatMs = Duration.toMillis(config.heartbeatInterval)

    const jobTypeOf = (row: JobTypeRow, viewer: Viewer) =>
      new JobType({
        room: row.room,
        name: row.name,
        visibility: row.visibility,
        category: row.category,
        shortName: row.shortName,
        schema: row.schema,
        schemaDigest: row.schemaDigest,
        maxAttempts: row.maxAttempts,
        workers: row.workers,
        mine: row.registeredBy === viewer.sub,
        createdAt: DateTime.unsafeFromDate(row.createdAt),
        updatedAt: DateTime.unsafeFromDate(row.updatedAt)
      }, true)

    const notFound = (room: string, name: string) =>
      new JobTypeNotFound({ room, name, message: `no job type ${name} in room ${room} or ${GLOBAL_ROOM}` })

    /**
     * Registers job type `body.name` for `room` and links the caller's worker (`body.workerId`, default its `sub`)
     * to it. The same name with an equal schema links the worker (`existing`); another schema is `SchemaConflict`;
     * a type removed as an orphan is revived with the new schema. `@global` types need the worker or admin role.
     */
    const register = Effect.fn("JobLib.register")(function*(
      user: User,
      room: string,
      body: { readonly name: string; readonly schema: unknown; readonly workerId?: string | undefined; readonly maxAttempts?: number | undefined }
    ) {
      const parts = parseJobTypeName(body.name)
      if (parts === undefined) return yield* new InvalidInput({ field: "name", message: "must be <public|private>:<category>:<name>" })
      if (room === GLOBAL_ROOM && !user.isWorker) {
        return yield* new Forbidden({ message: `registering a job type for ${GLOBAL_ROOM} needs the worker role`, required: "worker" })
      }
      const workerId = body.workerId ?? user.sub
      yield* checkJobLibWorker(user, workerId)
      if (typeof body.schema !== "object" || body.schema === null || Array.isArray(body.schema)) {
        return yield* new InvalidInput({ field: "schema", message: "must be a JSON Schema object" })
      }
      const schema = body.schema
      const digest = yield* Either.mapLeft(schemas.check(schema), (message) => new InvalidInput({ field: "schema", message }))
      const registered = yield* repo.register({
        room,
        name: body.name,
        ...parts,
        registeredBy: user.sub,
        schema,
        schemaDigest: digest,
        maxAttempts: body.maxAttempts ?? 1,
        workerId,
        heartbeatMs,
        leaseMs: Math.round(heartbeatMs * 1.5),
        maxTypes: MAX_JOB_TYPES_PER_USER
      })
      if (registered.outcome === "limit") {
        return yield* new JobTypeLimitReached({
          limit: MAX_JOB_TYPES_PER_USER,
          message: `you have registered ${MAX_JOB_TYPES_PER_USER} job types, as many as one user may: let some go first`
        })
      }
      if (registered.outcome === "conflict") {
        return yield* new SchemaConflict({
          room,
          name: body.name,
          registeredDigest: registered.schemaDigest ?? "",
          requestedDigest: digest,
          message: `job type ${body.name} is registered in room ${room} with another schema ` +
            `(${registered.schemaDigest ?? "?"}, not ${digest})`
        })
      }
      const viewer = viewerOf(user)
      // by id: the row the registration wrote or linked, whatever happened to it since
      const row = registered.id === null ? undefined : yield* repo.byId(registered.id)
      if (row === undefined) return yield* Effect.die(new Error(`registered job type ${body.name} not found`))
      return new JobTypeRegistration({ jobType: jobTypeOf(row, viewer), workerId, outcome: registered.outcome }, true)
    })

    /** The job types of `room`: its own and `@global`'s (only `@global`'s for `@global`), that the caller may see. */
    const list = Effect.fn("JobLib.list")(function*(
      user: User,
      room: string,
      page: { readonly limit?: number | undefined; readonly offset?: number | undefined } = {}
    ) {
      const viewer = viewerOf(user)
      const limit = page.limit ?? DEFAULT_LIST_LIMIT
      const offset = page.offset ?? 0
      const { items, total } = yield* repo.list(room, viewer, limit, offset)
      return new JobTypeList({ items: items.map((row) => jobTypeOf(row, viewer)), total, limit, offset }, true)
    })

    /** Type `name` as `room` has it (its own first, else `@global`'s), or `JobTypeNotFound`. */
    const get = Effect.fn("JobLib.get")(function*(user: User, room: string, name: string) {
      const viewer = viewerOf(user)
      const row = yield* repo.find(room, name, viewer)
      return row === undefined ? yield* notFound(room, name) : jobTypeOf(row, viewer)
    })

    /** Worker `workerId` stops serving type `name` of `room` (it is removed once no worker serves it and no task waits). */
    const unregister = Effect.fn("JobLib.unregister")(function*(user: User, room: string, name: string, workerId: string) {
      yield* checkJobLibWorker(user, workerId)
      const row = yield* repo.find(room, name, viewerOf(user))
      if (row === undefined || !(yield* repo.unlink(row.id, workerId))) return yield* notFound(room, name)
    })

    /**
     * Pushes a task of type `name` to `room`: the type must be the room's or `@global`'s and visible to the caller
     * (`JobTypeNotFound` otherwise), the payload must match its schema (`PayloadInvalid`, with each problem's path).
     */
    const push = Effect.fn("JobLib.push", { kind: "producer" })(function*(
      user: User,
      room: string,
      name: string,
      payload: unknown,
      options: { readonly priority?: number | undefined; readonly delay?: Duration.Duration | undefined } = {}
    ) {
      if (room === GLOBAL_ROOM) {
        return yield* new InvalidInput({ field: "roomId", message: `tasks are pushed to a room, not to ${GLOBAL_ROOM}` })
      }
      const row = yield* repo.find(room, name, viewerOf(user))
      if (row === undefined) return yield* notFound(room, name)
      const payloadJson = yield* jsonValue("payload", payload, config.maxPayloadBytes)
      const issues = schemas.validate(row.schemaDigest, row.schema as object, payload)
      if (issues.length > 0) {
        return yield* new PayloadInvalid({
          name,
          errors: issues,
          message: `the payload does not match the schema of ${name}: ` +
            issues.slice(0, 3).map((issue) => `${issue.path} ${issue.message}`).join("; ")
        })
      }
      const id = makeJobId()
      // where spans are exported, the task's trace context is this push's span (as Jobs.enqueue's)
      const span = propagating ? yield* Effect.option(Effect.currentSpan) : undefined
      const refs = yield* jobs.insert([{
        id,
        name,
        queue: room,
        owner: user.sub,
        payloadJson,
        priority: options.priority ?? 0,
        runAt: null,
        delayMs: options.delay === undefined ? null : Duration.toMillis(options.delay),
        maxAttempts: row.maxAttempts,
        timeoutMs: null,
        idempotencyKey: null,
        backoff: defaultBackoff,
        webhookUrl: null,
        webhookSecret: null,
        external: false,
        jobTypeId: row.id,
        traceparent: span?._tag === "Some" ? traceparentOf(span.value) : undefined
      }])
      recordEnqueued(refs)
      // just inserted: it is there (only a purge could have taken it meanwhile)
      return yield* Effect.catchTag(jobs.getTask(id), "JobNotFound", Effect.die)
    })

    /**
     * Claims up to `limit` tasks of the types worker `workerId` serves (in `rooms`), priority then oldest; with
     * `wait`, waits for one without polling. `WorkerNotFound` when the worker is not registered (it never registered
     * a type, or was forgotten for silence: register again).
     */
    const claim = Effect.fn("JobLib.claim")(function*(
      workerId: string,
      options: {
        readonly rooms?: ReadonlyArray<string> | undefined
        readonly limit?: number | undefined
        readonly wait?: Duration.Duration | undefined
        readonly heartbeatInterval?: Duration.Duration | undefined
        readonly until?: Effect.Effect<void> | undefined
      } = {}
    ) {
      const beatMs = options.heartbeatInterval === undefined ? heartbeatMs : Duration.toMillis(options.heartbeatInterval)
      // what wakes the claim: a task of a type the worker serves, and a type it serves from now on (a
      // registration's link rings `@worker:<id>`). The types are read before each attempt's claim, the waiter
      // registered already: a task of a type read becomes ready either before the claim reads (it takes it) or
      // after, waking it; a type linked after the read rings `@worker:<id>`
      const keys = new Set([`@worker:${workerId}`])
      const servedNow = Effect.map(repo.servedKeys(workerId), (served) => {
        for (const key of keys) if (!served.has(key) && key.startsWith("@type:")) keys.delete(key)
        for (const key of served) keys.add(key)
      })
      const claimOnce = Effect.zipRight(
        servedNow,
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          repo.claim({
            workerId,
            rooms: options.rooms,
            limit: options.limit ?? 1,
            leaseMs: Math.round(beatMs * 1.5),
            heartbeatMs: Math.max(1, Math.round(beatMs)),
            now: new Date(now)
          }).pipe(Effect.tap((rows) => Effect.sync(() => recordClaimed(rows)))))
      )
      const rows = yield* waiters.claim({
        keys,
        claimOnce,
        waitMs: options.wait === undefined ? 0 : Duration.toMillis(options.wait),
        until: options.until,
        giveBack: (rows) => Effect.asVoid(claims.release(workerId, rows.map((row) => row.id)))
      })
      return rows.map((row) => claimedJobOf(row, beatMs))
    })

    /** A task as the caller may see it: its creator, the worker holding it, or an admin; `JobNotFound` otherwise. */
    const task = (user: User, id: JobId) => jobs.getTask(id, user.isAdmin ? undefined : user.sub)

    /**
     * The holder reports on a task: `running` first, then its progress, then an end (`cancelled` spelled either
     * way). Answers the task as it then is.
     */
    const update = Effect.fn("JobLib.update")(function*(id: JobId, body: TaskUpdate) {
      const scope = { workerId: body.workerId, message: body.message }
      // running first (progress above 0 would start a claimed task itself), an end after the progress it reached
      const started = body.status === "running" ? yield* workers.start(id, scope) : undefined
      if (body.progress !== undefined) yield* workers.progress(id, body.progress, scope)
      if (body.artefacts !== undefined && body.status !== "completed" && body.status !== "failed") {
        yield* workers.attach(id, body.artefacts, scope)
      }
      switch (body.status) {
        case undefined:
          return yield* jobs.getTask(id)
        case "running":
          return body.progress === undefined && body.artefacts === undefined ? started! : yield* jobs.getTask(id)
        case "completed":
          return yield* workers.complete(id, { ...scope, result: body.result, artefacts: body.artefacts })
        case "canceled":
        case "cancelled":
          return yield* workers.canceled(id, scope)
        case "failed": {
          const error = typeof body.error === "string" ? { message: body.error } : body.error
          if (error === undefined) return yield* new InvalidInput({ field: "error", message: "is required when status is failed" })
          return yield* workers.fail(id, {
            ...scope,
            code: "code" in error ? error.code : undefined,
            error: error.message,
            retryable: "retryable" in error ? error.retryable : undefined,
            artefacts: body.artefacts
          })
        }
      }
    })

    return { register, list, get, unregister, push, claim, task, update, heartbeat: workers.heartbeat } as const
  })
}) {}
