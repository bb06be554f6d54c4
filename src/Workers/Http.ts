import { HttpApiBuilder, HttpRouter } from "@effect/platform"
import { Effect, Layer, Option } from "effect"
import { Api } from "../Api.js"
import { WorkerRole } from "../Auth/Api.js"
import { checkWorker, CurrentUser, Forbidden } from "../Domain/Auth.js"
import { InvalidInput } from "../Domain/Errors.js"
import type { JobId } from "../Domain/JobId.js"
import type { UpdateBody } from "../Domain/Requests.js"
import { ReleaseResult } from "../Domain/Worker.js"
import { asWorker, Waits } from "../Http/Waits.js"
import { Workers } from "../Workers.js"
import { ClaimResult } from "./Api.js"

type Update = typeof UpdateBody.Type

/**
 * Who may report on job `id`: the caller acts as `workerId` when it names one (the worker-identity rule); naming
 * none, it must hold the worker role and the job must be external (reported on by id, without a lease).
 */
export const asReporter = (workers: Workers, id: JobId, workerId: string | undefined) =>
  workerId === undefined
    ? Effect.zipRight(Effect.flatMap(CurrentUser, (user) => checkWorker(user)), workers.requireExternal(id))
    : asWorker(workerId)

/**
 * A worker starts or ends a job it holds (or an external one), as `PATCH /v1/jobs/{id}` (and the RPC `JobUpdate`)
 * ask; `artefacts` are attached in the same transaction as a completion or a failure, before any other change.
 */
export const updateJob = (workers: Workers, id: JobId, body: Update) =>
  Effect.gen(function*() {
    yield* asReporter(workers, id, body.workerId)
    const scope = { workerId: body.workerId, message: body.message }
    const { artefacts } = body
    const ending = body.status === "completed" || body.status === "failed"
    if (artefacts !== undefined && !ending) yield* workers.attach(id, artefacts, scope)
    switch (body.status) {
      case "running":
        return yield* workers.start(id, scope)
      case "completed":
        return yield* workers.complete(id, { ...scope, result: body.result, artefacts })
      case "canceled":
        return yield* workers.canceled(id, scope)
      case "failed": {
        // the schema refuses a failed without an error; this keeps the types honest
        const error = body.error
        if (error === undefined) return yield* new InvalidInput({ field: "error", message: "is required when status is failed" })
        return yield* workers.fail(id, {
          ...scope,
          code: error.code,
          error: error.message,
          retryable: error.retryable,
          progress: body.progress,
          artefacts
        })
      }
    }
  })

/** Lets go of a worker's jobs and answers them as `ReleaseResult`. */
export const releaseJobs = (workers: Workers, workerId: string, ids: ReadonlyArray<JobId> | undefined) =>
  Effect.zipRight(
    asWorker(workerId),
    Effect.map(workers.release(workerId, ids), (released) =>
      ReleaseResult.make({ released: released.map((job) => ({ id: job.id, status: job.status })) }))
  )

/** The worker endpoints: decoded by the API's schemas, answered by `Workers` once the caller may act as the worker. */
export const WorkersLive = HttpApiBuilder.group(Api, "workers", (handlers) =>
  Effect.gen(function*() {
    const workers = yield* Workers
    const waits = yield* Waits
    return handlers
      .handle("claim", ({ path, payload }) =>
        Effect.zipRight(
          asWorker(path.workerId),
          workers.claim(path.workerId, { ...payload, wait: waits.cap(payload.wait), until: waits.draining })
        ).pipe(Effect.map((jobs) => ClaimResult.make({ jobs }))))
      .handle("release", ({ path, payload }) => releaseJobs(workers, path.workerId, payload.ids))
      .handle("heartbeat", ({ path }) => Effect.zipRight(asWorker(path.workerId), workers.heartbeat(path.workerId)))
      .handle("update", ({ path, payload }) => updateJob(workers, path.id, payload))
      .handle("progress", ({ path, payload: { workerId, ...report } }) =>
        Effect.zipRight(asReporter(workers, path.id, workerId), workers.progress(path.id, report, { workerId })))
      .handle("attach", ({ path, payload: { artefacts, workerId } }) =>
        Effect.zipRight(asReporter(workers, path.id, workerId), workers.attach(path.id, artefacts, { workerId })))
  }))

/**
 * The worker-role check: the `CurrentUser` that `Authentication` provided must be a worker (or an admin) and, on
 * `/v1/workers/{workerId}/…`, may act as that worker id: refused before the body is read, whatever it holds. The
 * ids in bodies (`PATCH /v1/jobs/{id}`, progress) are checked by the handlers, by the same rule.
 */
export const WorkerRoleLive = Layer.succeed(
  WorkerRole,
  Effect.gen(function*() {
    const user = yield* Effect.serviceOption(CurrentUser)
    if (Option.isNone(user)) return yield* new Forbidden({ message: "this needs the worker role", required: "worker" })
    const route = yield* Effect.serviceOption(HttpRouter.RouteContext)
    const workerId = Option.isSome(route) ? route.value.params["workerId"] : undefined
    return yield* checkWorker(user.value, workerId)
  })
)
