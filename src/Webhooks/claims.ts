import { SqlClient } from "@effect/sql"
import { DateTime, Duration, Effect, Option, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { webhookPayloadOf, WebhookPayload } from "../Domain/JobEvent.js"
import { eventColumns, EventRowJson, toJobEvent } from "../internal/rows.js"
import type { Attempt } from "./post.js"

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
  /** The request body: the event's envelope, rendered now (`null`: the event is gone, there is nothing to send). */
  readonly body: string | null
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
  /** When the delivery was written (its event happened). */
  readonly createdAt: Date
}

/** How many deliveries one claim may take: in all, and of those that are `suspect`. */
export interface ClaimLimits {
  readonly free: number
  readonly suspectFree: number
}

interface ClaimedRow extends Omit<Claimed, "body"> {
  readonly lockedUntil: Date
  /** The event's `eventColumns` (and its job's `jobName`, `jobOwner`) as `to_jsonb` writes them; `null` if gone. */
  readonly event: unknown
  /** The endpoint's body format; `null` for a job's own callback (standard). */
  readonly format: string | null
  /** The body stored by the fan-out before bodies were rendered at delivery (sql/0015); `null` for later rows. */
  readonly storedBody: unknown
}

const decodeEvent = Schema.decodeUnknown(Schema.NullOr(Schema.Struct({
  ...EventRowJson.fields,
  jobName: Schema.String,
  jobOwner: Schema.NullOr(Schema.String)
})))
const encodePayload = Schema.encode(WebhookPayload)

/**
 * The `simple` body of an event: flat, as the notification system jobwatch replaces sends it. `eventType` is
 * `progress`, `completed`, `failed`, `canceled` or `status` (every other transition); `progress` comes with the
 * percentage, `completed` with the `result`, `failed` with the `error` message, a terminal one with the job's
 * `artefacts`; every body has the `status`.
 */
export const simpleBodyOf = (event: JobEvent, jobName: string, owner: string | null) => {
  const eventType = event.type === "job.progress"
    ? "progress"
    : event.type === "job.completed" || event.type === "job.failed" || event.type === "job.canceled"
    ? event.type.slice(4)
    : "status"
  return {
    id: event.jobId,
    jobname: jobName,
    userId: owner,
    eventType,
    status: event.status,
    ...(eventType === "progress" ? { progress: event.progress } : {}),
    ...(eventType === "completed" ? { result: event.result } : {}),
    ...(eventType === "failed" ? { error: event.error?.message ?? null } : {}),
    ...(event.artefacts !== null ? { artefacts: event.artefacts } : {}),
    version: event.version,
    timestamp: DateTime.formatIso(event.timestamp)
  }
}

/**
 * The body of a claimed delivery, rendered from its event's envelope (a row from before sql/0015 too: its receiver
 * gets today's vocabulary) in the endpoint's format, or the stored body of a row whose event is gone.
 */
const bodyOf = (row: ClaimedRow) =>
  Effect.flatMap(decodeEvent(row.event), (event) => {
    if (event === null) return Effect.succeed(row.storedBody === null ? null : JSON.stringify(row.storedBody))
    const envelope = toJobEvent(event)
    return row.format === "simple"
      ? Effect.succeed(JSON.stringify(simpleBodyOf(envelope, event.jobName, event.jobOwner)))
      : Effect.map(encodePayload(webhookPayloadOf(envelope)), (payload) => JSON.stringify(payload))
  })

/** A claimed row as the deliverer gets it: its body rendered. */
const claimedOf = (row: ClaimedRow) =>
  Effect.map(bodyOf(row), (body): Claimed => {
    const { event: _event, format: _format, lockedUntil: _lockedUntil, storedBody: _storedBody, ...rest } = row
    return { ...rest, body }
  })

/** How an attempt is settled: the delivery's new status and, while pending, when it falls due again. */
export interface Outcome {
  readonly attempt: Attempt
  readonly startedAt: number
  readonly status: "succeeded" | "failed" | "pending"
  readonly nextAttemptAt: number
}

/** An attempt made, to be recorded. */
export interface Recorded {
  readonly delivery: Claimed
  readonly outcome: Outcome
}

/** What a batch of attempts did to one endpoint's health, in the order they ended. */
interface Health {
  readonly id: string
  /** A success among them: the count of failures starts again from it. */
  reset: boolean
  /** Failures since the last success among them (all of them without one). */
  failures: number
  succeededAt: number | null
  firstFailureAt: number | null
  lastAt: number
  gone: boolean
}

const healthOf = (done: ReadonlyArray<Recorded>): ReadonlyArray<Health> => {
  const byEndpoint = new Map<string, Health>()
  for (const { delivery, outcome } of done) {
    if (delivery.endpointId === null) continue
    const at = outcome.startedAt + outcome.attempt.durationMs
    let h = byEndpoint.get(delivery.endpointId)
    if (h === undefined) {
      h = {
        id: delivery.endpointId,
        reset: false,
        failures: 0,
        succeededAt: null,
        firstFailureAt: null,
        lastAt: at,
        gone: false
      }
      byEndpoint.set(delivery.endpointId, h)
    }
    h.lastAt = Math.max(h.lastAt, at)
    if (outcome.status === "succeeded") {
      h.reset = true
      h.failures = 0
      h.succeededAt = at
      h.firstFailureAt = null
    } else {
      h.failures++
      h.firstFailureAt ??= at
      if (outcome.attempt.status === 410) h.gone = true
    }
  }
  return [...byEndpoint.values()]
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
  const events = sql(`${config.schema}.job_events`)
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
      ), locked AS MATERIALIZED (
        -- by primary key: an array, not a semi-join the planner may make a scan of the table per candidate row
        SELECT x.id FROM ${deliveries} x WHERE x.id = ANY(ARRAY(SELECT id FROM picked)) FOR UPDATE SKIP LOCKED
      ), claimed AS (
        -- the conditions again, on the locked row: another deliverer may have claimed it since this statement began
        UPDATE ${deliveries} d
        SET locked_until = now() + ${leaseMs} * interval '1 millisecond', attempts = d.attempts + 1,
          claim = gen_random_uuid()
        WHERE d.id = ANY(ARRAY(SELECT id FROM locked))
          AND d.status = 'pending' AND d.next_attempt_at <= ${now}
          AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING d.id, d.claim, d.endpoint_id, d.url, d.event_id, d.body, d.attempts, d.job_id, d.version,
          d.locked_until, d.created_at
      )
      SELECT c.id, c.claim, c.endpoint_id AS "endpointId", c.url, c.event_id AS "eventId", c.body AS "storedBody",
        c.attempts, p.probe, p.suspect, c.locked_until AS "lockedUntil", c.created_at AS "createdAt",
        -- the event, read with the claim: its body is rendered from it
        (SELECT to_jsonb(ev) FROM (
          SELECT ${sql.literal(eventColumns)}, j.name AS "jobName", j.owner AS "jobOwner"
          FROM ${events} e JOIN ${jobs} j ON j.id = e.job_id
          WHERE e.job_id = c.job_id AND e.version = c.version
        ) ev) AS event,
        coalesce(w.secret, j.webhook_secret) AS secret, w.format, w.previous_secret AS "previousSecret",
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
      const won = probes.length === 0 ? new Set<string>() : yield* holdEndpoints(probes).pipe(
        Effect.tapErrorCause(() => Effect.ignore(release(probes.map((p) => p.claim))))
      )
      const kept = rows.filter((row) => !row.probe || row.endpointId === null || won.has(row.claim))
      // an event that does not decode is a defect: its claims are given up rather than left to run out
      return yield* Effect.forEach(kept, claimedOf).pipe(
        Effect.orDie,
        Effect.tapErrorCause(() => Effect.ignore(release(kept.map((row) => row.claim))))
      )
    })

  /**
   * Records attempts, settles their deliveries (those their claim still holds) and their endpoints' health: one
   * statement for the lot, so one round trip and one transaction. An attempt's log row is written only while its
   * delivery exists (its endpoint may have been deleted while it was in flight).
   */
  const record = (done: ReadonlyArray<Recorded>) => {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
    const finished = done.map(({ outcome: o }) => (o.status === "pending" ? null : o.startedAt + o.attempt.durationMs))
    const health = healthOf(done)
    // the first failure of the current run of failures: none after a success, else the earlier of the row's and ours
    const since = sql`CASE WHEN h.failures = 0 THEN NULL WHEN h.reset THEN h.first_failure_at
      ELSE coalesce(w.failing_since, h.first_failure_at) END`
    const tooLong = sql`${since} <= h.last_at - ${disableAfterMs} * interval '1 millisecond'`
    return sql`
      WITH input AS (
        SELECT * FROM unnest(
          ${done.map((r) => r.delivery.id)}::uuid[], ${done.map((r) => r.delivery.claim)}::uuid[],
          ${done.map((r) => r.delivery.attempts)}::int[], ${done.map((r) => iso(r.outcome.startedAt))}::timestamptz[],
          ${done.map((r) => r.outcome.attempt.durationMs)}::int[], ${done.map((r) => r.outcome.attempt.status)}::int[],
          ${done.map((r) => r.outcome.attempt.error)}::text[], ${done.map((r) => r.outcome.status)}::text[],
          ${done.map((r) => iso(r.outcome.nextAttemptAt))}::timestamptz[], ${finished.map(iso)}::timestamptz[]
        ) AS i(id, claim, attempt, started_at, duration_ms, status_code, error, status, next_attempt_at, finished_at)
      ), logged AS (
        INSERT INTO ${attempts} (delivery_id, attempt, started_at, duration_ms, status_code, error)
        SELECT i.id, i.attempt, i.started_at, i.duration_ms, i.status_code, i.error
        FROM input i WHERE EXISTS (SELECT 1 FROM ${deliveries} d WHERE d.id = i.id)
        ON CONFLICT DO NOTHING
      ), settled AS (
        UPDATE ${deliveries} d SET status = i.status, locked_until = NULL, claim = NULL, last_status = i.status_code,
          last_error = i.error, next_attempt_at = i.next_attempt_at, finished_at = i.finished_at
        FROM input i WHERE d.id = i.id AND d.claim = i.claim
      ), outcomes AS (
        SELECT * FROM unnest(
          ${health.map((h) => h.id)}::uuid[], ${health.map((h) => h.reset)}::boolean[],
          ${health.map((h) => h.failures)}::int[], ${health.map((h) => iso(h.succeededAt))}::timestamptz[],
          ${health.map((h) => iso(h.firstFailureAt))}::timestamptz[],
          ${health.map((h) => iso(h.lastAt))}::timestamptz[],
          ${health.map((h) => h.gone)}::boolean[]
        ) AS h(id, reset, failures, succeeded_at, first_failure_at, last_at, gone)
      )
      UPDATE ${endpoints} w SET
        consecutive_failures = CASE WHEN h.reset THEN h.failures ELSE w.consecutive_failures + h.failures END,
        last_success_at = coalesce(h.succeeded_at, w.last_success_at),
        failing_since = ${since},
        active = CASE WHEN h.gone OR ${tooLong} THEN false ELSE w.active END,
        disabled_reason = CASE WHEN h.gone THEN 'the receiver answered 410 Gone'
          WHEN ${tooLong} THEN 'failing without a success for too long' ELSE w.disabled_reason END,
        updated_at = CASE WHEN h.gone THEN now() ELSE w.updated_at END,
        -- a probe's hold on its endpoint ends with its attempt (and only the probe's: another claim may hold it now)
        probe_claim = CASE WHEN w.probe_claim = ANY(${done.map((r) => r.delivery.claim)}::uuid[]) THEN NULL
          ELSE w.probe_claim END,
        probe_until = CASE WHEN w.probe_claim = ANY(${done.map((r) => r.delivery.claim)}::uuid[]) THEN NULL
          ELSE w.probe_until END
      FROM outcomes h
      -- written when the health changes, a probe ends, or once a minute: not on every success of a busy endpoint
      WHERE w.id = h.id AND (h.failures > 0 OR h.gone OR w.consecutive_failures > 0
        OR w.failing_since IS NOT NULL OR w.last_success_at IS NULL
        OR w.last_success_at < h.succeeded_at - interval '1 minute'
        OR w.probe_claim = ANY(${done.map((r) => r.delivery.claim)}::uuid[]))`.pipe(Effect.asVoid)
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
