import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Option, Schema } from "effect"
import { Api } from "../Api.js"
import { CurrentUser } from "../Domain/Auth.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { asOwner, Waits } from "../Http/Waits.js"
import { Forbidden } from "../Domain/Auth.js"
import type { InvalidInput } from "../Domain/Errors.js"
import type { JobCursorPage, JobPage, JobsPurged } from "../Domain/Job.js"
import { JobInfo, JobStatusInfo } from "../Domain/Job.js"
import type { ListOptions, PurgeBody } from "../Domain/Requests.js"
import type { TraceContext } from "../Domain/TraceContext.js"
import { Propagation, traceContextOfHeaders } from "../Domain/TraceContext.js"
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

/**
 * The trace context of an enqueue request's `traceparent` (and `tracestate`) header, for the jobs whose body gives
 * none; a malformed one is ignored, as the W3C recommendation says. When this process exports spans and the
 * request's span continues the header's trace (the HTTP server's span is the header's child), none: `Jobs.enqueue`
 * then stores its own span, a descendant of the header's.
 */
export const headerTraceContext = (
  propagating: boolean
): Effect.Effect<TraceContext | undefined, never, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const { headers } = yield* HttpServerRequest.HttpServerRequest
    const given = traceContextOfHeaders(headers["traceparent"], headers["tracestate"])
    if (Option.isNone(given)) return undefined
    if (propagating) {
      const span = yield* Effect.option(Effect.currentSpan)
      if (Option.isSome(span) && span.value.traceId === given.value.traceparent.slice(3, 35)) return undefined
    }
    return given.value
  })

/** A job of an enqueue request's body, with the header's trace context when it has none of its own. */
const withTraceContext = <J extends { readonly traceparent?: string | undefined }>(job: J, traced: TraceContext | undefined) =>
  traced === undefined || job.traceparent !== undefined ? job : { ...job, ...traced }

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
    const headerContext = headerTraceContext(yield* Propagation)
    const slot = holdSlot(yield* Limits, "long_poll")
    const slotFor = (wait: Duration.Duration) => (Duration.isZero(wait) ? Effect.void : slot)
    return handlers
      .handle("enqueue", ({ payload }) =>
        Effect.zipWith(CurrentUser, headerContext, (user, traced) => ({ user, traced })).pipe(
          Effect.flatMap(({ traced, user }) => jobs.enqueue({ ...withTraceContext(payload, traced), owner: user.sub })),
          Effect.map((ref) => ref.existing ? { ...ref, existing: true as const } : { ...ref, existing: false as const })
        ))
      .handle("enqueueBatch", ({ payload }) =>
        Effect.zipWith(CurrentUser, headerContext, (user, traced) => ({ user, traced })).pipe(
          // decoded once, by the API's schema
          Effect.flatMap(({ traced, user }) =>
            jobs.enqueueBatchDecoded(payload.jobs.map((job) => ({ ...withTraceContext(job, traced), owner: user.sub })))
          ),
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
