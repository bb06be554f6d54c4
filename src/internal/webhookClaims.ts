import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option } from "effect"
import { JobWatchConfig } from "../Config.js"
import type { Attempt } from "./webhookPost.js"

/** After this many failed attempts in a row, an endpoint gets one delivery in flight at a time until one succeeds. */
export const circuitAfter = 3

/**
 * How much longer than `webhookTimeout` a claim holds: the attempt is bounded by the timeout, and this leaves its
 * record the time to land. A dead deliverer's claims are taken over once the timeout and this margin have passed
 * (an idle deliverer wakes then).
 */
export const leaseMargin = Duration.seconds(4)

/** A delivery claimed for one attempt. */
export interface Claimed {
  readonly id: string
  /** The claim's token: every write of this attempt names it. */
  readonly claim: string
  readonly endpointId: string | null
  readonly url: string
  readonly eventId: string
  readonly body: unknown
  readonly attempts: number
  /** The endpoint has not answered yet, or its last attempts failed: this is its one delivery in flight. */
  readonly probe: boolean
  /**
   * The endpoint failed its last attempt or has not answered yet (a job's own callback: this delivery failed
   * before): such deliveries hold at most half of a deliverer's slots.
   */
  readonly suspect: boolean
  readonly secret: string | null
  readonly previousSecret: string | null
  readonly previousSecretUntil: Date | null
}

/** How many deliveries one claim may take: in all, and of those that are `suspect`. */
export interface ClaimLimits {
  readonly free: number
  readonly suspectFree: number
}

interface ClaimedRow extends Claimed {
  readonly lockedUntil: Date
}

/** How an attempt is settled: the delivery's new status and, while pending, when it falls due again. */
export interface Outcome {
  readonly attempt: Attempt
  readonly startedAt: number
  readonly status: "succeeded" | "failed" | "pending"
  readonly nextAttemptAt: number
}

/**
 * The statements of the webhook deliverer. Claims lock with `FOR UPDATE SKIP LOCKED` and re-check every due
 * condition on the row version they lock, so that two deliverers never hold one delivery; leases are on the
 * database's clock (several processes compare them), due times on the caller's.
 */
export const make = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const config = yield* JobWatchConfig
  const deliveries = sql(`${config.schema}.webhook_deliveries`)
  const endpoints = sql(`${config.schema}.webhook_endpoints`)
  const jobs = sql(`${config.schema}.jobs`)
  const attempts = sql(`${config.schema}.webhook_attempts`)
  const leaseMs = Duration.toMillis(config.webhookTimeout) + Duration.toMillis(leaseMargin)
  const disableAfterMs = Duration.toMillis(config.webhookDisableAfter)
  const cap = config.webhookEndpointConcurrency

  /**
   * Up to `free` due deliveries, round-robin over endpoints (fewest held first), at most
   * `webhookEndpointConcurrency` held per endpoint across processes, one for an endpoint on probation (none while
   * one is held), and at most `suspectFree` that are `suspect`.
   */
  const claimDue = (now: Date, limits: ClaimLimits, skip: ReadonlyArray<string>) =>
    sql<ClaimedRow>`
      WITH RECURSIVE waiting AS (
        -- the endpoints with pending deliveries, one index probe each (a skip scan)
        (SELECT endpoint_id AS id FROM ${deliveries}
          WHERE status = 'pending' AND endpoint_id IS NOT NULL ORDER BY endpoint_id LIMIT 1)
        UNION ALL
        SELECT (SELECT x.endpoint_id FROM ${deliveries} x
            WHERE x.status = 'pending' AND x.endpoint_id > waiting.id ORDER BY x.endpoint_id LIMIT 1)
        FROM waiting WHERE waiting.id IS NOT NULL
      ), held AS (
        SELECT endpoint_id, count(*)::int AS k FROM ${deliveries}
        WHERE status = 'pending' AND locked_until IS NOT NULL AND locked_until >= now() AND endpoint_id IS NOT NULL
        GROUP BY endpoint_id
      ), due AS (
        -- each endpoint's first due deliveries, at most its cap
        (SELECT d.id, d.next_attempt_at, coalesce(h.k, 0) AS k, w.probe_until,
          w.consecutive_failures >= ${circuitAfter} OR w.last_success_at IS NULL AS probe,
          w.consecutive_failures > 0 OR w.last_success_at IS NULL AS suspect, d.n
        FROM waiting e
          JOIN ${endpoints} w ON w.id = e.id AND w.active AND NOT (w.id = ANY(${skip}::uuid[]))
          LEFT JOIN held h ON h.endpoint_id = e.id
          CROSS JOIN LATERAL (
            SELECT x.id, x.next_attempt_at, row_number() OVER (ORDER BY x.next_attempt_at, x.id) AS n
            FROM ${deliveries} x
            WHERE x.endpoint_id = e.id AND x.status = 'pending' AND x.next_attempt_at <= ${now}
              AND (x.locked_until IS NULL OR x.locked_until < now())
            ORDER BY x.next_attempt_at, x.id LIMIT ${cap}
          ) d)
        UNION ALL
        -- jobs' own callbacks, each its own target
        (SELECT x.id, x.next_attempt_at, 0, NULL, false, x.attempts > 0, 1
        FROM ${deliveries} x
        WHERE x.endpoint_id IS NULL AND x.status = 'pending' AND x.next_attempt_at <= ${now}
          AND (x.locked_until IS NULL OR x.locked_until < now())
        ORDER BY x.next_attempt_at LIMIT ${limits.free})
      ), eligible AS (
        SELECT id, next_attempt_at, probe, suspect, k + n AS turn,
          row_number() OVER (PARTITION BY suspect ORDER BY k + n, next_attempt_at, id) AS nth
        FROM due
        WHERE CASE WHEN probe THEN n = 1 AND k = 0 AND (probe_until IS NULL OR probe_until < now())
          ELSE k + n <= ${cap} END
      ), picked AS MATERIALIZED (
        SELECT id, probe, suspect FROM eligible
        WHERE NOT suspect OR nth <= ${limits.suspectFree}
        ORDER BY turn, next_attempt_at, id
        LIMIT ${limits.free}
      ), claimed AS (
        -- the conditions again, on the locked row: another deliverer may have claimed it since this statement began
        UPDATE ${deliveries} d
        SET locked_until = now() + ${leaseMs} * interval '1 millisecond', attempts = d.attempts + 1,
          claim = gen_random_uuid()
        WHERE d.id IN (SELECT x.id FROM ${deliveries} x WHERE x.id IN (SELECT id FROM picked) FOR UPDATE SKIP LOCKED)
          AND d.status = 'pending' AND d.next_attempt_at <= ${now}
          AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING d.id, d.claim, d.endpoint_id, d.url, d.event_id, d.body, d.attempts, d.job_id, d.locked_until
      )
      SELECT c.id, c.claim, c.endpoint_id AS "endpointId", c.url, c.event_id AS "eventId", c.body, c.attempts,
        p.probe, p.suspect, c.locked_until AS "lockedUntil",
        coalesce(w.secret, j.webhook_secret) AS secret, w.previous_secret AS "previousSecret",
        w.previous_secret_until AS "previousSecretUntil"
      FROM claimed c JOIN picked p ON p.id = c.id
        LEFT JOIN ${endpoints} w ON w.id = c.endpoint_id
        -- a job's own callback: signed with the job's secret, when it gave one
        LEFT JOIN ${jobs} j ON c.endpoint_id IS NULL AND j.id = c.job_id`

  /**
   * Gives up claims: the attempts were not made, so they are not counted. A probe's hold on its endpoint goes with
   * it.
   */
  const release = (claims: ReadonlyArray<string>) =>
    claims.length === 0 ? Effect.void : Effect.asVoid(Effect.all([
      sql`UPDATE ${deliveries} SET locked_until = NULL, claim = NULL, attempts = greatest(attempts - 1, 0)
        WHERE claim = ANY(${claims}::uuid[]) AND status = 'pending'`,
      sql`UPDATE ${endpoints} SET probe_claim = NULL, probe_until = NULL WHERE probe_claim = ANY(${claims}::uuid[])`
    ]))

  /**
   * A probe holds its endpoint: the first claim to mark the endpoint row keeps its probe (the row lock and the
   * re-check make it one across processes); the others are released. Answers the probes kept.
   */
  const holdEndpoints = (probes: ReadonlyArray<ClaimedRow>) =>
    Effect.gen(function*() {
      const kept = yield* sql<{ claim: string }>`
        UPDATE ${endpoints} w SET probe_claim = v.claim, probe_until = v.until
        FROM unnest(${probes.map((p) => p.endpointId)}::uuid[], ${probes.map((p) => p.claim)}::uuid[],
          ${probes.map((p) => new Date(p.lockedUntil).toISOString())}::timestamptz[]) AS v(id, claim, until)
        WHERE w.id = v.id
          AND w.id IN (SELECT id FROM ${endpoints} WHERE id = ANY(${probes.map((p) => p.endpointId)}::uuid[])
            FOR UPDATE SKIP LOCKED)
          AND (w.probe_until IS NULL OR w.probe_until < now())
        RETURNING v.claim`
      const won = new Set(kept.map((row) => row.claim))
      yield* release(probes.filter((p) => !won.has(p.claim)).map((p) => p.claim))
      return won
    })

  /** Claims as `claimDue` does, leaving out the endpoints `skip`; a probe is kept only if it holds its endpoint. */
  const claim = (now: number, limits: ClaimLimits, skip: ReadonlyArray<string> = []) =>
    Effect.gen(function*() {
      const rows = yield* claimDue(new Date(now), limits, skip)
      const probes = rows.filter((row) => row.probe && row.endpointId !== null)
      if (probes.length === 0) return rows
      const won = yield* holdEndpoints(probes).pipe(
        Effect.tapErrorCause(() => Effect.ignore(release(probes.map((p) => p.claim))))
      )
      return rows.filter((row) => !row.probe || row.endpointId === null || won.has(row.claim))
    })

  /** The endpoint's health after an attempt (the probe's hold ends with it, and only the probe's). */
  const health = (d: Claimed & { readonly endpointId: string }, ok: boolean, gone: boolean, at: Date) => {
    const probeClaim = sql`CASE WHEN probe_claim = ${d.claim} THEN NULL ELSE probe_claim END`
    const probeUntil = sql`CASE WHEN probe_claim = ${d.claim} THEN NULL ELSE probe_until END`
    if (ok) {
      // written when the health changes, the probe ends, or once a minute: not on every success of a busy endpoint
      return sql`UPDATE ${endpoints} SET consecutive_failures = 0, failing_since = NULL, last_success_at = ${at},
          probe_claim = ${probeClaim}, probe_until = ${probeUntil}
        WHERE id = ${d.endpointId} AND (consecutive_failures > 0 OR failing_since IS NOT NULL
          OR last_success_at IS NULL OR last_success_at < ${at}::timestamptz - interval '1 minute'
          OR probe_claim = ${d.claim})`
    }
    if (gone) {
      return sql`UPDATE ${endpoints} SET active = false, updated_at = now(),
          disabled_reason = 'the receiver answered 410 Gone', consecutive_failures = consecutive_failures + 1,
          probe_claim = ${probeClaim}, probe_until = ${probeUntil}
        WHERE id = ${d.endpointId}`
    }
    const since = sql`coalesce(failing_since, ${at})`
    const tooLong = sql`${since} <= ${at}::timestamptz - ${disableAfterMs} * interval '1 millisecond'`
    return sql`UPDATE ${endpoints} SET failing_since = coalesce(failing_since, ${at}),
        consecutive_failures = consecutive_failures + 1,
        active = CASE WHEN ${tooLong} THEN false ELSE active END,
        disabled_reason = CASE WHEN ${tooLong} THEN 'failing without a success for too long' ELSE disabled_reason END,
        probe_claim = ${probeClaim}, probe_until = ${probeUntil}
      WHERE id = ${d.endpointId}`
  }

  /**
   * Records the attempt, settles the delivery (if the claim still holds it) and the endpoint's health: one
   * statement, so one round trip and one transaction. Answers whether the claim still held the delivery.
   */
  const record = (d: Claimed, outcome: Outcome) => {
    const { attempt, startedAt, status } = outcome
    const at = new Date(startedAt + attempt.durationMs)
    const endpointId = d.endpointId
    const endpoint = endpointId === null
      ? sql``
      : sql`, health AS (${health({ ...d, endpointId }, status === "succeeded", attempt.status === 410, at)})`
    return sql<{ settled: boolean }>`
      WITH logged AS (
        -- not if the delivery is gone (its endpoint was deleted while the attempt was in flight)
        INSERT INTO ${attempts} (delivery_id, attempt, started_at, duration_ms, status_code, error)
        SELECT id, ${d.attempts}, ${new Date(startedAt)}, ${attempt.durationMs}, ${attempt.status}, ${attempt.error}
        FROM ${deliveries} WHERE id = ${d.id}
        ON CONFLICT DO NOTHING
      ), settled AS (
        UPDATE ${deliveries} SET status = ${status}, locked_until = NULL, claim = NULL,
          last_status = ${attempt.status}, last_error = ${attempt.error},
          next_attempt_at = ${new Date(outcome.nextAttemptAt)},
          finished_at = ${status === "pending" ? null : at}
        WHERE id = ${d.id} AND claim = ${d.claim}
        RETURNING 1
      )${endpoint}
      SELECT EXISTS (SELECT 1 FROM settled) AS settled`.pipe(Effect.map((rows) => rows[0]?.settled === true))
  }

  /**
   * When something may next become claimable without a wake-up: a retry falling due, a claim's lease or a probe's
   * hold running out (a dead deliverer's). Clock ms, if any.
   */
  const nextChange = (now: number) =>
    sql<{ at: Date | null }>`
      SELECT least(
        (SELECT min(next_attempt_at) FROM ${deliveries}
          WHERE status = 'pending' AND next_attempt_at > ${new Date(now)}),
        (SELECT min(locked_until) FROM ${deliveries}
          WHERE status = 'pending' AND locked_until IS NOT NULL AND locked_until > now()),
        (SELECT min(probe_until) FROM ${endpoints} WHERE probe_until IS NOT NULL AND probe_until > now())
      ) AS at`.pipe(
      Effect.map((rows) => Option.fromNullable(rows[0]?.at).pipe(Option.map((d) => new Date(d).getTime())))
    )

  return { claim, release, record, nextChange } as const
})
