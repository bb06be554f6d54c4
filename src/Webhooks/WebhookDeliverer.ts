import { Cause, Chunk, Clock, Deferred, Duration, Effect, Exit, Fiber, FiberSet, Option, Queue, Random } from "effect"
import { JobWatchConfig } from "../Config.js"
import { describeError, makeStreak, retrying } from "../internal/retry.js"
import * as Claims from "./claims.js"
import type { Claimed } from "./claims.js"
import type { Attempt } from "./post.js"
import { post, userAgent } from "./post.js"
import { signatures, urlProblem } from "./security.js"
import { Listener } from "../EventLog.js"
import { recordAttempt } from "../Metrics/families.js"

export { parseRetryAfter } from "./post.js"

/** A delivery this process holds: since when, and whether it counts against the slots of endpoints in failure. */
interface Held {
  readonly delivery: Claimed
  readonly since: number
  suspect: boolean
}

/** An attempt to record, and the signal that it was (or could not be). */
interface ToRecord extends Claims.Recorded {
  readonly recorded: Deferred.Deferred<void, unknown>
}

/** What the held deliveries leave for a claim now. */
interface Room {
  readonly limits: Claims.ClaimLimits
  /** Endpoints with a stalled attempt here: none of their deliveries is claimed until it ends. */
  readonly stalled: ReadonlyArray<string>
  /** When the next held attempt stalls (clock ms), freeing its slot. */
  readonly nextStall: number
}

/**
 * Delivers webhooks: claims due deliveries with `FOR UPDATE SKIP LOCKED` (any number of processes may run it; a
 * delivery is held by one at a time), POSTs each, signed, with a per-attempt timeout, retries with jittered backoff
 * on the configured schedule (honouring `Retry-After`), disables an endpoint on 410 or after failing for
 * `webhookDisableAfter`, and records every attempt. In flight at most `webhookConcurrency` here, and
 * `webhookEndpointConcurrency` per endpoint across processes. An endpoint that has not answered yet, or whose last
 * attempts failed, gets one delivery in flight at a time until one succeeds, and such endpoints together hold at
 * most half of the slots; an attempt without an answer after half the timeout (at most 2 s) gives up its slot: a
 * dead endpoint never holds back a healthy one. A claim holds for `webhookTimeout` and 4 s: a killed deliverer's
 * deliveries are taken over then. Due times come from the caller's `Clock`, leases from the database's.
 */
export class WebhookDeliverer extends Effect.Service<WebhookDeliverer>()("jobwatch/WebhookDeliverer", {
  dependencies: [Listener.Default],
  scoped: Effect.gen(function*() {
    const listener = yield* Listener
    const config = yield* JobWatchConfig
    const claims = yield* Claims.make
    const wake = yield* Queue.sliding<void>(1)
    const ring = () => Queue.unsafeOffer(wake, undefined)
    /** Deliveries claimed here whose attempt is under way, by claim: what holds the slots. */
    const held = new Map<string, Held>()
    /** Claims made here whose attempt is not recorded yet: released if the service stops first. */
    const unrecorded = new Set<string>()
    /** The slots deliveries to endpoints in failure (or not answering yet) may hold: half, so that others find one. */
    const suspectSlots = Math.max(1, Math.floor(config.webhookConcurrency / 2))
    const stats = { attempts: 0, succeeded: 0, failed: 0 }
    const fibers = yield* FiberSet.make()
    const now = Clock.currentTimeMillis
    const idleMs = Option.match(config.refreshInterval, { onNone: () => 5000, onSome: Duration.toMillis })
    const loopStreak = yield* makeStreak("the webhook deliverer", { cap: config.retryMaxBackoff })
    const recordStreak = yield* makeStreak("recording webhook attempts", { cap: config.retryMaxBackoff })

    yield* listener.on("webhooks", ring)

    /**
     * Attempts to record: one statement records all those that ended while the previous one ran, so that a busy
     * deliverer makes one round trip for many attempts, and an idle one records each at once.
     */
    const toRecord = yield* Queue.unbounded<ToRecord>()
    const recordOne = (item: ToRecord) =>
      Effect.exit(claims.record([item])).pipe(
        Effect.flatMap((exit) => Deferred.done(item.recorded, Exit.isSuccess(exit) ? Exit.void : exit))
      )
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const batch = Chunk.toReadonlyArray(yield* Queue.takeBetween(toRecord, 1, 200))
      const exit = yield* Effect.exit(claims.record(batch))
      if (Exit.isSuccess(exit)) {
        for (const item of batch) yield* Deferred.succeed(item.recorded, undefined)
      } else {
        // one at a time, so that one attempt that cannot be recorded does not leave the others to be made again
        for (const item of batch) yield* recordOne(item)
      }
    })))

    /**
     * An attempt without an answer for this long stalls: it keeps its request open (until the timeout) but no
     * longer holds one of the `webhookConcurrency` slots, up to as many stalled ones again, and its endpoint gets no
     * other delivery from here until it ends. So endpoints that answered before and then stop answering free the
     * slots they took long before their attempts time out and their failures are recorded.
     */
    const stallAfterMs = Math.min(Duration.toMillis(config.webhookTimeout) / 2, 2000)

    const room = (current: number): Room => {
      let active = 0
      let activeSuspect = 0
      let nextStall = Number.POSITIVE_INFINITY
      const stalled = new Set<string>()
      for (const h of held.values()) {
        const stallsAt = h.since + stallAfterMs
        if (stallsAt <= current) {
          if (h.delivery.endpointId !== null) stalled.add(h.delivery.endpointId)
          continue
        }
        active++
        if (h.suspect) activeSuspect++
        nextStall = Math.min(nextStall, stallsAt)
      }
      const free = Math.min(config.webhookConcurrency - active, 2 * config.webhookConcurrency - held.size)
      const limits = { free, suspectFree: Math.max(0, suspectSlots - activeSuspect) }
      return { limits, stalled: [...stalled], nextStall }
    }

    /** What an attempt came to: the delivery's status, and when it is due again while pending. */
    const outcomeOf = (d: Claimed, startedAt: number, attempt: Attempt) =>
      Effect.gen(function*() {
        const ok = attempt.status !== null && attempt.status >= 200 && attempt.status < 300
        const gone = attempt.status === 410
        const retriesLeft = d.attempts <= config.webhookRetrySchedule.length
        let next: number | null = null
        if (!ok && !gone && retriesLeft) {
          const base = Duration.toMillis(config.webhookRetrySchedule[d.attempts - 1]!)
          // jitter: between 80% and 120% of the schedule's wait, or what the receiver asked for
          const jittered = Math.round(base * (0.8 + 0.4 * (yield* Random.next)))
          next = startedAt + (attempt.retryAfter !== null ? attempt.retryAfter * 1000 : jittered)
        }
        const status = ok ? "succeeded" as const : next === null ? "failed" as const : "pending" as const
        return { attempt, startedAt, status, nextAttemptAt: next ?? startedAt } satisfies Claims.Outcome
      })

    /** One attempt of one delivery. */
    const deliver = (d: Claimed) =>
      Effect.gen(function*() {
        const startedAt = yield* now
        const body = d.body ?? ""
        const timestamp = Math.floor(startedAt / 1000)
        const overlapping = d.previousSecretUntil !== null && new Date(d.previousSecretUntil).getTime() > startedAt
        const secrets = [
          ...(d.secret === null ? [] : [d.secret]),
          ...(d.previousSecret !== null && overlapping ? [d.previousSecret] : [])
        ]
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "user-agent": userAgent,
          "webhook-id": d.eventId,
          "webhook-timestamp": String(timestamp)
        }
        if (secrets.length > 0) headers["webhook-signature"] = signatures(secrets, d.eventId, timestamp, body)
        const problem = urlProblem(d.url)
        let timedOut = false
        const result = d.body === null
          ? { status: null, error: "its event no longer exists", retryAfter: null }
          : problem !== undefined
          ? { status: null, error: `the URL ${problem.message}`, retryAfter: null }
          : yield* post(d.url, headers, body, config.webhookAllowPrivate).pipe(
            Effect.timeoutTo({
              duration: config.webhookTimeout,
              onTimeout: () => {
                timedOut = true
                return { status: null, error: `no answer within ${Duration.format(config.webhookTimeout)}`, retryAfter: null }
              },
              onSuccess: (r) => r
            })
          )
        const endedAt = yield* now
        const outcome = yield* outcomeOf(d, startedAt, { ...result, durationMs: endedAt - startedAt })
        yield* recordAttempt(result.status, timedOut, (endedAt - new Date(d.createdAt).getTime()) / 1000)
        // the other deliveries to this endpoint held here count as its health now says
        const suspect = outcome.status !== "succeeded"
        for (const h of held.values()) {
          if (d.endpointId !== null && h.delivery.endpointId === d.endpointId) h.suspect = suspect
        }
        // an attempt that was made is recorded, even while the service stops
        yield* Effect.uninterruptible(Effect.flatMap(Deferred.make<void, unknown>(), (recorded) => {
          Queue.unsafeOffer(toRecord, { delivery: d, outcome, recorded })
          return Deferred.await(recorded)
        }))
        unrecorded.delete(d.claim)
        yield* recordStreak.succeeded
        stats.attempts++
        if (outcome.status === "succeeded") stats.succeeded++
        else if (outcome.status === "failed") stats.failed++
      }).pipe(
        // not recorded: the claim's lease runs out and the attempt is made again (interrupted: released at shutdown)
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => unrecorded.delete(d.claim)).pipe(
            Effect.zipRight(recordStreak.failed(cause)),
            Effect.asVoid
          )
        ),
        Effect.ensuring(Effect.sync(() => {
          held.delete(d.claim)
          ring()
        }))
      )

    /**
     * Claims what the free slots allow and starts the attempts; unless that fills every slot, sleeps until a wake-up
     * (a new delivery, a slot freed) or until something may fall due or an attempt stalls.
     */
    const step = Effect.gen(function*() {
      const current = yield* now
      const { limits, nextStall, stalled } = room(current)
      if (limits.free > 0) {
        const batch = yield* claims.claim(current, limits, stalled)
        for (const d of batch) {
          held.set(d.claim, { delivery: d, since: current, suspect: d.suspect })
          unrecorded.add(d.claim)
          yield* FiberSet.run(fibers, deliver(d))
        }
        if (batch.length === limits.free) return
      }
      let waitMs = idleMs
      if (limits.free > 0) {
        const next = yield* claims.nextChange(current)
        // a millisecond late rather than early: a lease is compared with the database's clock
        if (Option.isSome(next)) waitMs = Math.min(waitMs, next.value - (yield* now) + 1)
      }
      waitMs = Math.max(1, Math.min(waitMs, nextStall - (yield* now)))
      yield* Queue.take(wake).pipe(Effect.timeoutOption(Duration.millis(waitMs)))
    })

    if (config.webhooks) {
      const running = yield* Effect.forkScoped(
        Effect.forever(retrying(step, loopStreak)).pipe(
          Effect.annotateLogs({ module: "WebhookDeliverer", fiber: "deliveries" })
        )
      )
      // stopping: no more claims, attempts in flight are interrupted (those already answered are recorded), and
      // the claims of the unfinished ones are released at once, their attempt not counted, for another deliverer
      // (or this one restarted) to make again
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          yield* Fiber.interrupt(running)
          yield* FiberSet.clear(fibers)
          yield* claims.release([...unrecorded]).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logWarning(`could not release webhook deliveries at shutdown: ${describeError(cause)}`)
            )
          )
        })
      )
    }

    return {
      /**
       * Attempts made by this process, deliveries that succeeded, those that failed for good, and the attempts in
       * flight now.
       */
      stats: Effect.sync(() => ({ ...stats, inFlight: held.size })),
      /** Wakes the loop (a delivery was just made due). */
      wake: Effect.sync(ring)
    } as const
  })
}) {}
