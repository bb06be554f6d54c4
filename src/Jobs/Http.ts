import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Schema } from "effect"
import { Api } from "../Api.js"
import { CurrentUser } from "../Domain/Auth.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { asOwner, Waits } from "../Http/Waits.js"
import { Forbidden } from "../Domain/Auth.js"
import type { InvalidInput } from "../Domain/Errors.js"
import type { JobCursorPage, JobPage, JobsPurged } from "../Domain/Job.js"
import { JobInfo, JobStatusInfo } from "../Domain/Job.js"
import type { ListOptions, PurgeBody } from "../Domain/Requests.js"
import { Jobs } from "../Jobs.js"
import { JobRefs, WaitResult } from "./Api.js"

/** `Prefer: wait=N` (RFC 7240): N seconds; absent, malformed or 0: no wait. */
export const preferredWait = (prefer: string | undefined): number => {
  if (prefer === undefined) return 0
  for (const part of prefer.split(/[,;]/)) {
    const m = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*$/i.exec(part)
    if (m !== null) return Number(m[1])
  }
  return 0
}

/**
 * Reads a job (`read`) waiting as the `Prefer` header asks (capped), and announces the wait it applied in
 * `Preference-Applied` when it answers the job.
 */
export const withPreferredWait = <E, R>(
  prefer: string | undefined,
  max: Duration.Duration,
  read: (wait: Duration.Duration) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => {
  const seconds = Math.min(preferredWait(prefer), Math.floor(Duration.toSeconds(max)))
  // on the answer itself (a pre-response handler per request costs thousands of woken long-polls a fiber ref each)
  return seconds === 0 ? read(Duration.zero) : Effect.map(
    read(Duration.seconds(seconds)),
    (response) => HttpServerResponse.setHeader(response, "preference-applied", `wait=${seconds}`)
  )
}

/**
 * The JSON answer of `schema` for a value, encoded once per value: the polls and long-polls that share one read
 * (`Waits.longPoll`) share its bytes, so thousands woken by one completion encode it once, not once each.
 */
const encodedOnce = <A extends object, I>(schema: Schema.Schema<A, I>) => {
  const encode = Schema.encodeSync(schema)
  const bodies = new WeakMap<A, Uint8Array>()
  const utf8 = new TextEncoder()
  return (value: A) => {
    let body = bodies.get(value)
    if (body === undefined) {
      body = utf8.encode(JSON.stringify(encode(value)))
      bodies.set(value, body)
    }
    return HttpServerResponse.uint8Array(body, { contentType: "application/json" })
  }
}
export const jobAnswer = encodedOnce(JobInfo)
const statusAnswer = encodedOnce(JobStatusInfo)

/** A page of the caller's jobs: by cursor when one is given, else by page number. */
export const listJobs = (
  jobs: Jobs,
  { cursor, page, ...filter }: typeof ListOptions.Type
): Effect.Effect<JobPage | JobCursorPage, InvalidInput, CurrentUser> =>
  asOwner(({ owner }): Effect.Effect<JobPage | JobCursorPage, InvalidInput> =>
    cursor !== undefined ? jobs.listByCursor({ ...filter, owner, cursor }) : jobs.list({ ...filter, owner, page })
  )

/** Purges finished jobs by filter: an admin's operation (`Forbidden` otherwise). */
export const purgeJobs = (jobs: Jobs, body: PurgeBody): Effect.Effect<JobsPurged, InvalidInput | Forbidden, CurrentUser> =>
  Effect.flatMap(CurrentUser, (user): Effect.Effect<JobsPurged, InvalidInput | Forbidden> =>
    user.isAdmin
      ? jobs.purge(body)
      : Effect.fail(new Forbidden({ message: "purging jobs needs the admin role", required: "admin" })))

/** The jobs endpoints: decoded by the API's schemas, answered by `Jobs` for the caller's owner scope. */
export const JobsLive = HttpApiBuilder.group(Api, "jobs", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const waits = yield* Waits
    const slot = holdSlot(yield* Limits, "long_poll")
    const slotFor = (wait: Duration.Duration) => (Duration.isZero(wait) ? Effect.void : slot)
    return handlers
      .handle("enqueue", ({ payload }) =>
        Effect.flatMap(CurrentUser, (user) => jobs.enqueue({ ...payload, owner: user.sub })).pipe(
          Effect.map((ref) => ref.existing ? { ...ref, existing: true as const } : { ...ref, existing: false as const })
        ))
      .handle("enqueueBatch", ({ payload }) =>
        Effect.flatMap(CurrentUser, (user) =>
          // decoded once, by the API's schema
          jobs.enqueueBatchDecoded(payload.jobs.map((job) => ({ ...job, owner: user.sub })))).pipe(
          Effect.map((refs) => JobRefs.make({ jobs: refs }))
        ))
      .handle("list", ({ urlParams }) => listJobs(jobs, urlParams))
      .handle("wait", ({ payload }) =>
        Effect.zipRight(
          slotFor(payload.timeout === undefined ? waits.maxWait : waits.cap(payload.timeout)),
          Effect.map(waits.waitMany(payload.ids, payload.mode, payload.timeout), (result) => WaitResult.make(result))
        ))
      .handle("get", ({ headers, path, urlParams: { afterVersion } }) =>
        withPreferredWait(headers.prefer, waits.maxWait, (wait) =>
          Effect.zipRight(
            slotFor(wait),
            asOwner((scope) =>
              waits.longPoll(path.id, waits.view("job", scope), jobs.get(path.id, scope), { wait, afterVersion })
            ).pipe(Effect.map(jobAnswer))
          )))
      .handle("status", ({ headers, path, urlParams: { afterVersion } }) =>
        withPreferredWait(headers.prefer, waits.maxWait, (wait) =>
          Effect.zipRight(
            slotFor(wait),
            asOwner((scope) =>
              waits.longPoll(path.id, waits.view("status", scope), jobs.status(path.id, scope), { wait, afterVersion })
            ).pipe(Effect.map(statusAnswer))
          )))
      .handle("cancel", ({ path }) => asOwner((scope) => jobs.cancel(path.id, scope)))
      .handle("delete", ({ path }) =>
        asOwner((scope) => jobs.delete(path.id, scope)).pipe(
          // only a worker acting on a job it does not hold gets NotJobHolder; a user never acts as one
          Effect.catchTag("NotJobHolder", Effect.die)
        ))
      .handle("purge", ({ payload }) => purgeJobs(jobs, payload))
  }))
