import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { Api } from "../Api.js"
import { CurrentUser } from "../Domain/Auth.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { Waits } from "../Http/Waits.js"
import { checkJobLibWorker, JobLib } from "../JobLib.js"
import { jobAnswer, withPreferredWait } from "../Jobs/Http.js"
import type { JobId } from "../Domain/JobId.js"
import type { TaskClaimBody, TaskUpdateBody } from "../Domain/JobLib.js"
import { TaskClaimResult } from "../Domain/JobLib.js"

type Claim = typeof TaskClaimBody.Type

/** A task claim for the caller, acting as `workerId` under the job library's rule, capped and ended by a drain. */
export const claimTasks = (joblib: JobLib, waits: Waits, { workerId, ...options }: Claim) =>
  Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, workerId)).pipe(
    Effect.zipRight(Effect.suspend(() => joblib.claim(workerId, { ...options, wait: waits.cap(options.wait), until: waits.draining }))),
    Effect.map((tasks) => new TaskClaimResult({ tasks }, true))
  )

/** A task, long-polled: the caller must be its creator, its holder or an admin. */
export const readTask = (
  joblib: JobLib,
  waits: Waits,
  id: JobId,
  options: { readonly wait?: Duration.Duration | undefined; readonly afterVersion?: number | undefined }
) =>
  Effect.flatMap(CurrentUser, (user) =>
    waits.longPoll(id, waits.view("task", { owner: user.ownerScope }), joblib.task(user, id), options))

/** The holder reports on a task, acting as `body.workerId` under the job library's rule. */
export const updateTask = (joblib: JobLib, id: JobId, body: typeof TaskUpdateBody.Type) =>
  Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, body.workerId)).pipe(
    Effect.zipRight(joblib.update(id, body))
  )

/** A job library worker's heartbeat, as `workerId` under the job library's rule. */
export const heartbeatTasks = (joblib: JobLib, workerId: string) =>
  Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, workerId)).pipe(
    Effect.zipRight(joblib.heartbeat(workerId))
  )

/** The job library's endpoints: decoded by the API's schemas, answered by `JobLib` for the caller. */
export const JobLibLive = HttpApiBuilder.group(Api, "joblib", (handlers) =>
  Effect.gen(function*() {
    const joblib = yield* JobLib
    const waits = yield* Waits
    const slot = holdSlot(yield* Limits, "long_poll")
    return handlers
      .handle("register", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => joblib.register(user, path.roomId, payload)).pipe(
          Effect.map((registered) =>
            registered.outcome === "existing"
              ? { ...registered, outcome: "existing" as const }
              : { ...registered, outcome: registered.outcome }
          )
        ))
      .handle("listTypes", ({ path, urlParams }) => Effect.flatMap(CurrentUser, (user) => joblib.list(user, path.roomId, urlParams)))
      .handle("getType", ({ path }) => Effect.flatMap(CurrentUser, (user) => joblib.get(user, path.roomId, path.jobName)))
      .handle("unregister", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => joblib.unregister(user, path.roomId, path.jobName, path.workerId)))
      .handle("push", ({ path, payload, urlParams }) =>
        Effect.flatMap(CurrentUser, (user) => joblib.push(user, path.roomId, path.jobName, payload, urlParams)))
      .handle("claim", ({ payload }) =>
        Effect.zipRight(payload.wait === undefined || Duration.isZero(waits.cap(payload.wait)) ? Effect.void : slot, claimTasks(joblib, waits, payload)))
      .handle("task", ({ headers, path, urlParams: { afterVersion } }) =>
        withPreferredWait(headers.prefer, waits.maxWait, (wait) =>
          Effect.zipRight(Duration.isZero(wait) ? Effect.void : slot, readTask(joblib, waits, path.taskId, { wait, afterVersion }))
            .pipe(Effect.map(jobAnswer))))
      .handle("updateTask", ({ path, payload }) => updateTask(joblib, path.taskId, payload))
      .handle("heartbeat", ({ path }) => heartbeatTasks(joblib, path.workerId))
  }))
