import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Fiber, FiberSet, Option, Queue, Random, Schedule } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"
import { JobWatchConfig } from "./Config.js"
import { guardedLookup, isPrivateAddress, signatures, urlProblem } from "./internal/webhookSecurity.js"
import { Listener } from "./Listener.js"

/** A delivery claimed for one attempt. */
interface Claimed {
  readonly id: string
  readonly endpointId: string | null
  readonly url: string
  readonly eventId: string
  readonly body: unknown
  readonly attempts: number
  readonly secret: string | null
  readonly previousSecret: string | null
  readonly previousSecretUntil: Date | null
}

/** What one attempt came to. */
interface Attempt {
  readonly status: number | null
  readonly error: string | null
  /** Seconds the receiver asked to wait (`Retry-After` on 429/503). */
  readonly retryAfter: number | null
  readonly durationMs: number
}

const userAgent = "jobwatch-webhooks/1.0 (+https://www.standardwebhooks.com)"
/** A receiver's `Retry-After` is honoured up to a day. */
const MAX_RETRY_AFTER_S = 24 * 3600

/** `Retry-After`: seconds, or an HTTP date; `null` when absent or unreadable. */
export const parseRetryAfter = (value: string | undefined, now: number): number | null => {
  if (value === undefined || value.trim() === "") return null
  if (/^\d+$/.test(value.trim())) return Math.min(Number(value.trim()), MAX_RETRY_AFTER_S)
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.min(Math.max(0, Math.ceil((at - now) / 1000)), MAX_RETRY_AFTER_S) : null
}

/**
 * One POST, redirects not followed, refusing private addresses (unless allowed) at connection time. Never fails:
 * a network error, a refusal or a timeout is an attempt with an `error`. Interrupting it aborts the request.
 */
const post = (url: string, headers: Record<string, string>, body: string, allowPrivate: boolean) =>
  Effect.async<Omit<Attempt, "durationMs">>((resume) => {
    const target = new URL(url)
    const host = target.hostname.replace(/^\[|\]$/g, "")
    if (!allowPrivate && /^[\d.]+$|:/.test(host) && isPrivateAddress(host)) {
      resume(Effect.succeed({ status: null, error: `refused: ${host} is a private address`, retryAfter: null }))
      return
    }
    const request = (target.protocol === "https:" ? Https : Http).request(target, {
      method: "POST",
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
      ...(allowPrivate ? {} : { lookup: guardedLookup })
    })
    request.on("response", (response) => {
      // the body is not needed: read and drop it so that the connection can be reused
      response.resume()
      const retryAfter = response.statusCode === 429 || response.statusCode === 503
        ? parseRetryAfter(response.headers["retry-after"], Date.now())
        : null
      resume(Effect.succeed({ status: response.statusCode ?? null, error: null, retryAfter }))
    })
    request.on("error", (error) => resume(Effect.succeed({ status: null, error: error.message, retryAfter: null })))
    request.end(body)
    return Effect.sync(() => request.destroy())
  })

/**
 * Delivers webhooks: claims due deliveries with `FOR UPDATE SKIP LOCKED` (any number of processes may run it),
 * POSTs each, signed, with a per-attempt timeout, retries with jittered backoff on the configured schedule
 * (honouring `Retry-After`), disables an endpoint on 410 or after failing for `webhookDisableAfter`, and records
 * every attempt. In flight at most `webhookConcurrency`, and `webhookEndpointConcurrency` per endpoint, so one slow
 * endpoint never holds the others back. Times come from the caller's `Clock`.
 */
export class WebhookDeliverer extends Effect.Service<WebhookDeliverer>()("jobwatch/WebhookDeliverer", {
  dependencies: [Listener.Default],
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const listener = yield* Listener
    const config = yield* JobWatchConfig
    const deliveries = sql(`${config.schema}.webhook_deliveries`)
    const endpoints = sql(`${config.schema}.webhook_endpoints`)
    const jobs = sql(`${config.schema}.jobs`)
    const attempts = sql(`${config.schema}.webhook_attempts`)
    const timeoutMs = Duration.toMillis(config.webhookTimeout)
    const wake = yield* Queue.sliding<void>(1)
    const ring = () => Queue.unsafeOffer(wake, undefined)
    const perEndpoint = new Map<string, number>()
    /** Deliveries claimed here whose attempt is not recorded yet: released if the service stops first. */
    const claimedHere = new Set<string>()
    let inFlight = 0
    const stats = { attempts: 0, succeeded: 0, failed: 0 }
    const fibers = yield* FiberSet.make()
    const now = Clock.currentTimeMillis

    yield* listener.on("webhooks", ring)

    /** Claims up to `limit` due deliveries, leaving out endpoints at their limit here. */
    const claim = (at: number, limit: number) => {
      const busy = [...perEndpoint].filter(([, n]) => n >= config.webhookEndpointConcurrency).map(([id]) => id)
      const nowSql = new Date(at)
      return sql<Claimed>`
        WITH due AS (
          SELECT id FROM (
            SELECT d.id, d.next_attempt_at,
              row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at) AS n
            FROM ${deliveries} d LEFT JOIN ${endpoints} w ON w.id = d.endpoint_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= ${nowSql}
              AND (d.locked_until IS NULL OR d.locked_until < ${nowSql})
              AND (d.endpoint_id IS NULL OR (w.active AND NOT (d.endpoint_id = ANY(${busy}::uuid[]))))
          ) ranked
          WHERE n <= ${config.webhookEndpointConcurrency}
          ORDER BY next_attempt_at LIMIT ${limit}
        ), locked AS (
          SELECT d.id FROM ${deliveries} d WHERE d.id IN (SELECT id FROM due) FOR UPDATE SKIP LOCKED
        )
        , upd AS (
          UPDATE ${deliveries} d
          SET locked_until = ${nowSql}::timestamptz + ${timeoutMs + 60_000} * interval '1 millisecond',
            attempts = d.attempts + 1
          FROM locked WHERE d.id = locked.id
          RETURNING d.*
        )
        SELECT u.id, u.endpoint_id AS "endpointId", u.url, u.event_id AS "eventId", u.body, u.attempts,
          coalesce(w.secret, j.webhook_secret) AS secret, w.previous_secret AS "previousSecret",
          w.previous_secret_until AS "previousSecretUntil"
        FROM upd u LEFT JOIN ${endpoints} w ON w.id = u.endpoint_id
          -- a job's own callback: signed with the job's secret, when it gave one
          LEFT JOIN ${jobs} j ON u.endpoint_id IS NULL AND j.id = u.job_id`
    }

    /** When the next pending delivery falls due (clock ms), if any. */
    const nextDue = sql<{ at: Date | null }>`
      SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) AS at
      FROM ${deliveries} WHERE status = 'pending'`.pipe(
      Effect.map((rows) => Option.fromNullable(rows[0]?.at).pipe(Option.map((d) => new Date(d).getTime())))
    )

    /** Records the attempt, and settles the delivery (and its endpoint) as it came out, in one transaction. */
    const record = (d: Claimed, startedAt: number, attempt: Attempt) =>
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
        const status = ok ? "succeeded" : next === null ? "failed" : "pending"
        const at = new Date(startedAt + attempt.durationMs)
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO ${attempts} (delivery_id, attempt, started_at, duration_ms, status_code, error)
            VALUES (${d.id}, ${d.attempts}, ${new Date(startedAt)}, ${attempt.durationMs}, ${attempt.status}, ${attempt.error})
            ON CONFLICT DO NOTHING`
          yield* sql`UPDATE ${deliveries} SET status = ${status}, locked_until = NULL, last_status = ${attempt.status},
              last_error = ${attempt.error}, next_attempt_at = ${new Date(next ?? startedAt)},
              finished_at = ${status === "pending" ? null : at}
            WHERE id = ${d.id}`
          if (d.endpointId === null) return
          if (ok) {
            yield* sql`UPDATE ${endpoints} SET failing_since = NULL WHERE id = ${d.endpointId} AND failing_since IS NOT NULL`
          } else if (gone) {
            yield* sql`UPDATE ${endpoints} SET active = false, updated_at = now(),
                disabled_reason = 'the receiver answered 410 Gone' WHERE id = ${d.endpointId}`
          } else {
            yield* sql`UPDATE ${endpoints} SET failing_since = coalesce(failing_since, ${at}),
                active = CASE WHEN coalesce(failing_since, ${at}) <= ${at}::timestamptz - ${Duration.toMillis(config.webhookDisableAfter)} * interval '1 millisecond'
                  THEN false ELSE active END,
                disabled_reason = CASE WHEN coalesce(failing_since, ${at}) <= ${at}::timestamptz - ${Duration.toMillis(config.webhookDisableAfter)} * interval '1 millisecond'
                  THEN 'failing without a success for too long' ELSE disabled_reason END
              WHERE id = ${d.endpointId}`
          }
        }))
        stats.attempts++
        if (ok) stats.succeeded++
        else if (status === "failed") stats.failed++
      })

    /** One attempt of one delivery. */
    const deliver = (d: Claimed) =>
      Effect.gen(function*() {
        const startedAt = yield* now
        const body = JSON.stringify(d.body)
        const timestamp = Math.floor(startedAt / 1000)
        const secrets = [
          ...(d.secret === null ? [] : [d.secret]),
          ...(d.previousSecret !== null && d.previousSecretUntil !== null && new Date(d.previousSecretUntil).getTime() > startedAt
            ? [d.previousSecret]
            : [])
        ]
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "user-agent": userAgent,
          "webhook-id": d.eventId,
          "webhook-timestamp": String(timestamp)
        }
        if (secrets.length > 0) headers["webhook-signature"] = signatures(secrets, d.eventId, timestamp, body)
        const problem = urlProblem(d.url)
        const result = problem !== undefined
          ? { status: null, error: `the URL ${problem.message}`, retryAfter: null }
          : yield* post(d.url, headers, body, config.webhookAllowPrivate).pipe(
            Effect.timeoutTo({
              duration: config.webhookTimeout,
              onTimeout: () => ({ status: null, error: `no answer within ${Duration.format(config.webhookTimeout)}`, retryAfter: null }),
              onSuccess: (r) => r
            })
          )
        const durationMs = (yield* now) - startedAt
        // an attempt that was made is recorded, even while the service stops
        yield* Effect.uninterruptible(record(d, startedAt, { ...result, durationMs }))
        claimedHere.delete(d.id)
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`webhook delivery ${d.id} could not be recorded`, cause)),
        Effect.ensuring(Effect.sync(() => {
          inFlight--
          if (d.endpointId !== null) {
            const n = (perEndpoint.get(d.endpointId) ?? 1) - 1
            if (n <= 0) perEndpoint.delete(d.endpointId)
            else perEndpoint.set(d.endpointId, n)
          }
          ring()
        }))
      )

    const loop = Effect.gen(function*() {
      while (true) {
        const free = config.webhookConcurrency - inFlight
        let claimed = 0
        if (free > 0) {
          const batch = yield* claim(yield* now, free)
          claimed = batch.length
          for (const d of batch) {
            inFlight++
            claimedHere.add(d.id)
            if (d.endpointId !== null) perEndpoint.set(d.endpointId, (perEndpoint.get(d.endpointId) ?? 0) + 1)
            yield* FiberSet.run(fibers, deliver(d))
          }
          if (claimed === free) continue
        }
        const due = yield* nextDue
        const idleMs = Option.match(config.refreshInterval, { onNone: () => 5000, onSome: Duration.toMillis })
        const current = yield* now
        const waitMs = Option.match(due, { onNone: () => idleMs, onSome: (at) => Math.min(idleMs, Math.max(0, at - current)) })
        if (waitMs > 0 || free <= 0) yield* Queue.take(wake).pipe(Effect.timeoutOption(Duration.millis(Math.max(waitMs, 1))))
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError("the webhook deliverer failed; restarting in 1 s", cause)),
      Effect.repeat(Schedule.spaced("1 second"))
    )

    if (config.webhooks) {
      const running = yield* Effect.forkScoped(loop)
      // stopping: no more claims, attempts in flight are interrupted (those already answered are recorded), and
      // the claims of the unfinished ones are released at once, their attempt not counted, for another deliverer
      // (or this one restarted) to make again
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          yield* Fiber.interrupt(running)
          yield* FiberSet.clear(fibers)
          const left = [...claimedHere]
          if (left.length === 0) return
          yield* sql`UPDATE ${deliveries} SET locked_until = NULL, attempts = greatest(attempts - 1, 0)
            WHERE id = ANY(${left}::uuid[]) AND status = 'pending' AND locked_until IS NOT NULL`.pipe(
            Effect.catchAllCause((cause) => Effect.logWarning("could not release webhook deliveries at shutdown", cause))
          )
        })
      )
    }

    return {
      /** Attempts made by this process, deliveries that succeeded, and those that failed for good. */
      stats: Effect.sync(() => ({ ...stats })),
      /** Wakes the loop (a delivery was just made due). */
      wake: Effect.sync(ring)
    } as const
  })
}) {}
