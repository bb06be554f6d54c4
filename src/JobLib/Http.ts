import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { Api } from "../Api.js"
import { CurrentUser } from "../Domain/Auth.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { Waits } from "../Http/Waits.js"
import { checkJobLibWorker, JobLib } from "../JobLib.js"
import { jobAnswer, withPreferredWait } from "../Jobs/Http.js"

/** The job library's endpoints: decoded by the API's schemas, answered by `JobLib` for the caller. */
export const JobLibLive = HttpApiBuilder.group(Api, "joblib", (handlers) =>
  Effect.gen(function*() {
    const joblib = yield* JobLib
    const waits = yield* Waits
    const slot = holdSlot(yield* Limits)
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
      .handle("claim", ({ payload: { workerId, ...options } }) =>
        Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, workerId)).pipe(
          Effect.zipRight(Effect.suspend(() => {
            const wait = waits.cap(options.wait)
            return Effect.zipRight(
              Duration.isZero(wait) ? Effect.void : slot,
              joblib.claim(workerId, { ...options, wait, until: waits.draining })
            )
          })),
          Effect.map((tasks) => ({ tasks }))
        ))
      .handle("task", ({ headers, path, urlParams: { afterVersion } }) =>
        withPreferredWait(headers.prefer, waits.maxWait, (wait) =>
          Effect.zipRight(
            Duration.isZero(wait) ? Effect.void : slot,
            Effect.flatMap(CurrentUser, (user) =>
              waits.longPoll(
                path.taskId,
                user.isAdmin ? "task:all" : `task:${user.sub}`,
                joblib.task(user, path.taskId),
                { wait, afterVersion }
              ))
          ).pipe(Effect.map(jobAnswer))))
      .handle("updateTask", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, payload.workerId)).pipe(
          Effect.zipRight(joblib.update(path.taskId, payload))
        ))
      .handle("heartbeat", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => checkJobLibWorker(user, path.workerId)).pipe(
          Effect.zipRight(joblib.heartbeat(path.workerId))
        ))
  }))
