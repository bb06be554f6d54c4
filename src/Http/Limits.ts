import { HttpApp, HttpServerResponse } from "@effect/platform"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import type { Scope } from "effect"
import { RateLimit } from "../Api.js"
import { JobWatchConfig } from "../Config.js"
import type { User } from "../Domain/Auth.js"
import { CurrentUser } from "../Domain/Auth.js"
import { DatabaseUnavailable, TooManyRequests } from "../Domain/Errors.js"
import { isDatabaseDown } from "../internal/unavailable.js"
import { RpcLimits } from "../Rpcs.js"
import type { Channel } from "../Metrics/families.js"
import { holdOpen } from "../Metrics/families.js"

export interface LimitsOptions {
  /** Requests per second per user, on average; `None`: no limit. */
  readonly rate: Option.Option<number>
  /** Requests a user may make at once above the rate (the bucket's size). */
  readonly burst: number
  /** Open event streams and waiting requests per user; `None`: no limit. */
  readonly maxStreams: Option.Option<number>
}

/** Buckets kept before idle ones (refilled to full, so equal to a new one) are dropped. */
const sweepAbove = 10_000

/** `TooManyRequests`, with its `Retry-After` header when it answers an HTTP request. */
const tooMany = (error: TooManyRequests) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(
      response.status === 429 ? HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfter)) : response
    )
  ).pipe(Effect.zipRight(Effect.fail(error)))

/**
 * Per-user limits: a request rate (a token bucket per user) and a number of open event streams and waiting
 * requests. Admins and workers are not limited (a worker's claims, heartbeats and reports follow its jobs, and
 * admins are operators). The clock is Effect's, so tests drive the bucket with the `TestClock`.
 */
export const make = (options: LimitsOptions) => {
  const buckets = new Map<string, { tokens: number; at: number }>()
  const open = new Map<string, number>()
  let lastSweep = 0

  const sweep = (now: number, rate: number) => {
    if (buckets.size <= sweepAbove || now - lastSweep < 60_000) return
    lastSweep = now
    for (const [sub, bucket] of buckets) {
      if (bucket.tokens + ((now - bucket.at) * rate) / 1000 >= options.burst) buckets.delete(sub)
    }
  }

  /** Takes one request from `user`'s bucket, or fails with `TooManyRequests` (and the seconds until the next one). */
  const admit = (user: User): Effect.Effect<void, TooManyRequests> => {
    if (Option.isNone(options.rate) || user.isWorker) return Effect.void
    const rate = options.rate.value
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const bucket = buckets.get(user.sub)
      const tokens = bucket === undefined
        ? options.burst
        : Math.min(options.burst, bucket.tokens + (Math.max(0, now - bucket.at) * rate) / 1000)
      if (tokens >= 1) {
        buckets.set(user.sub, { tokens: tokens - 1, at: now })
        sweep(now, rate)
        return Effect.void
      }
      buckets.set(user.sub, { tokens, at: now })
      return tooMany(new TooManyRequests({ limit: "rate", retryAfter: Math.max(1, Math.ceil((1 - tokens) / rate)), max: rate }))
    })
  }

  /**
   * Holds one of `user`'s open stream or waiting request slots until the scope closes, or fails with
   * `TooManyRequests` when they are all taken; with `channel`, counted in the open streams of that channel (a
   * metric) while it is held.
   */
  const hold = (user: User, channel?: Channel): Effect.Effect<void, TooManyRequests, Scope.Scope> => {
    const slot = limit(user)
    return channel === undefined ? slot : Effect.zipRight(slot, holdOpen(channel))
  }

  const limit = (user: User): Effect.Effect<void, TooManyRequests, Scope.Scope> => {
    if (Option.isNone(options.maxStreams) || user.isWorker) return Effect.void
    const max = options.maxStreams.value
    return Effect.acquireRelease(
      Effect.suspend(() => {
        const count = open.get(user.sub) ?? 0
        if (count >= max) return tooMany(new TooManyRequests({ limit: "streams", retryAfter: 1, max }))
        open.set(user.sub, count + 1)
        return Effect.void
      }),
      () =>
        Effect.sync(() => {
          const count = (open.get(user.sub) ?? 1) - 1
          if (count <= 0) open.delete(user.sub)
          else open.set(user.sub, count)
        })
    )
  }

  /** The slots `sub` holds now. */
  const streams = (sub: string) => Effect.sync(() => open.get(sub) ?? 0)

  return { admit, hold, streams } as const
}

/** The limits of the configuration (`rateLimit`, `rateLimitBurst`, `maxStreamsPerUser`), shared by HTTP and RPC. */
export class Limits extends Effect.Service<Limits>()("jobwatch/Limits", {
  effect: Effect.map(JobWatchConfig, (config) =>
    make({ rate: config.rateLimit, burst: config.rateLimitBurst, maxStreams: config.maxStreamsPerUser }))
}) {}

/** The HTTP API's rate limit: after authentication, before the request's body is read. */
export const RateLimitLive = Layer.effect(
  RateLimit,
  Effect.map(Limits, (limits) =>
    Effect.flatMap(Effect.serviceOption(CurrentUser), (user) => Option.isSome(user) ? limits.admit(user.value) : Effect.void))
)

/** RPCs that hold a stream or waiting slot while they run. */
const waiting = new Set(["JobWatch", "EventsWatch", "JobWait", "JobWaitAll", "JobWaitFirst"])

const waitsFor = (tag: string, payload: unknown) =>
  waiting.has(tag) ||
  ((tag === "JobGet" || tag === "JobStatus") && typeof payload === "object" && payload !== null && "wait" in payload &&
    Duration.isDuration(payload.wait) && !Duration.isZero(payload.wait))

/**
 * The RPC group's limits, around each call (inside authentication): the rate, a slot for the streams and waits,
 * and a database that does not answer as `DatabaseUnavailable` instead of a defect.
 */
export const RpcLimitsLive = Layer.effect(
  RpcLimits,
  Effect.map(Limits, (limits) =>
    RpcLimits.of(({ next, payload, rpc }) =>
      Effect.gen(function*() {
        const user = yield* Effect.serviceOption(CurrentUser)
        if (Option.isNone(user)) return yield* next
        yield* limits.admit(user.value)
        if (!waitsFor(rpc._tag, payload)) return yield* next
        return yield* Effect.scoped(Effect.zipRight(limits.hold(user.value, "rpc"), next))
      }).pipe(
        Effect.catchAllCause((cause) => isDatabaseDown(cause) ? Effect.fail(new DatabaseUnavailable()) : Effect.failCause(cause))
      )
    ))
)

/**
 * One of the caller's open stream or waiting request slots, held until the response has been sent (the request's
 * scope); 429 `TooManyRequests` when they are all taken.
 */
export const holdSlot = (limits: Limits, channel: Channel) => Effect.flatMap(CurrentUser, (user) => limits.hold(user, channel))
