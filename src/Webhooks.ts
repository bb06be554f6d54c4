import { SqlClient } from "@effect/sql"
import { DateTime, Duration, Effect, Schema } from "effect"
import { JobWatchConfig } from "./Config.js"
import type { StoredEventType } from "./Domain/JobEvent.js"
import { eventTypeOf } from "./Domain/JobEvent.js"
import type { JobStatus } from "./Domain/JobStatus.js"
import type { WebhookEventType, WebhookFormat } from "./Domain/Webhook.js"
import {
  DeliveryAttempt,
  DeliveryPage,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookNotFound,
  WebhookWithSecret
} from "./Domain/Webhook.js"
import { eventTypesOf, PageNumber, WebhookBody, WebhookPatch } from "./Domain/Requests.js"
import { isUuid } from "./Domain/Values.js"
import { decodeField } from "./internal/invalid.js"
import { checkTarget, makeSecret } from "./Webhooks/security.js"

export interface WebhookInput {
  readonly url: string
  /** At least one of `eventTypes` and its alias `eventType`. */
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly eventType?: string | undefined
  readonly format?: string | undefined
  readonly description?: string | null | undefined
  readonly active?: boolean | undefined
}

export { checkTarget, secretProblem } from "./Webhooks/security.js"

/** What an update may change (each field optional). */
export interface WebhookChanges {
  readonly url?: string | undefined
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly eventType?: string | undefined
  readonly format?: string | undefined
  readonly description?: string | null | undefined
  readonly active?: boolean | undefined
}

interface EndpointRow {
  readonly id: string
  readonly owner: string
  readonly url: string
  readonly eventTypes: ReadonlyArray<WebhookEventType>
  readonly format: WebhookFormat
  readonly description: string | null
  readonly active: boolean
  readonly disabledReason: string | null
  readonly secret: string
  readonly createdAt: Date
  readonly updatedAt: Date
}

const columns = `id, owner, url, event_types AS "eventTypes", format, description, active, disabled_reason AS "disabledReason",
  secret, created_at AS "createdAt", updated_at AS "updatedAt"`

const toEndpoint = (row: EndpointRow) =>
  new WebhookEndpoint({
    id: row.id,
    owner: row.owner,
    url: row.url,
    eventTypes: row.eventTypes,
    format: row.format,
    description: row.description,
    active: row.active,
    disabledReason: row.disabledReason,
    createdAt: DateTime.unsafeFromDate(row.createdAt),
    updatedAt: DateTime.unsafeFromDate(row.updatedAt)
  }, true)

const withSecret = (row: EndpointRow) => new WebhookWithSecret({ ...toEndpoint(row), secret: row.secret }, true)

// what code passes in is checked by the schemas the HTTP API and the RPC group decode with
const decodeBody = decodeField(WebhookBody, "")
const decodePatch = decodeField(WebhookPatch, "")
const decodePage = decodeField(PageNumber, "page")

/**
 * Users' webhook endpoints: create (answering the signing secret once), read, update, delete, rotate the secret
 * (the old one keeps signing for `webhookSecretOverlap`), and the log of deliveries. A URL must be http(s) and,
 * unless `webhookAllowPrivate`, must resolve to public unicast addresses only (`WebhookTargetRefused`, 422). With
 * `owner`, another owner's endpoint is `WebhookNotFound`.
 */
export class Webhooks extends Effect.Service<Webhooks>()("jobwatch/Webhooks", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const config = yield* JobWatchConfig
    const endpoints = sql(`${config.schema}.webhook_endpoints`)
    const deliveries = sql(`${config.schema}.webhook_deliveries`)
    const events = sql(`${config.schema}.job_events`)
    const attempts = sql(`${config.schema}.webhook_attempts`)

    /** A webhook target: a valid http(s) URL that (unless allowed) reaches public addresses only. */
    const targetUrl = (field: string, value: unknown) => checkTarget(field, value, config.webhookAllowPrivate)

    const notFound = (id: string) => new WebhookNotFound({ id, message: `Webhook ${id} not found` })
    const idOf = (id: string) => (isUuid(id) ? Effect.succeed(id.toLowerCase()) : Effect.fail(notFound(id)))
    const decodeLimit = decodeField(Schema.Int.pipe(Schema.between(1, config.maxPageSize)), "limit")
    const ownerIs = (owner: string | undefined) => (owner === undefined ? sql`` : sql`AND owner = ${owner}`)

    const find = (id: string, owner: string | undefined) =>
      Effect.gen(function*() {
        const key = yield* idOf(id)
        const rows = yield* sql<EndpointRow>`SELECT ${sql.literal(columns)} FROM ${endpoints} WHERE id = ${key} ${ownerIs(owner)}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* notFound(id)
        return rows[0]!
      })

    return {
      create: (owner: string, input: WebhookInput) =>
        Effect.gen(function*() {
          const body = yield* decodeBody(input)
          const url = yield* targetUrl("url", body.url)
          const types = eventTypesOf(body) ?? []
          const format = body.format ?? "standard"
          const desc = body.description ?? null
          const on = body.active ?? true
          const [row] = yield* sql<EndpointRow>`
            INSERT INTO ${endpoints} (owner, url, event_types, format, description, active, secret)
            VALUES (${owner}, ${url}, ${types}::text[], ${format}, ${desc}, ${on}, ${makeSecret()})
            RETURNING ${sql.literal(columns)}`.pipe(Effect.orDie)
          return withSecret(row!)
        }),
      list: (owner: string | undefined) =>
        sql<EndpointRow>`SELECT ${sql.literal(columns)} FROM ${endpoints}
          WHERE true ${ownerIs(owner)} ORDER BY id LIMIT 1000`.pipe(Effect.map((rows) => rows.map(toEndpoint)), Effect.orDie),
      get: (id: string, owner: string | undefined) => Effect.map(find(id, owner), toEndpoint),
      update: (id: string, owner: string | undefined, input: WebhookChanges) =>
        Effect.gen(function*() {
          const current = yield* find(id, owner)
          const changes = yield* decodePatch(input)
          const url = changes.url === undefined ? current.url : yield* targetUrl("url", changes.url)
          const types = eventTypesOf(changes) ?? current.eventTypes
          const format = changes.format ?? current.format
          const desc = changes.description === undefined ? current.description : changes.description
          const on = changes.active ?? current.active
          const [row] = yield* sql<EndpointRow>`
            UPDATE ${endpoints} SET url = ${url}, event_types = ${types}::text[], format = ${format}, description = ${desc},
              active = ${on},
              disabled_reason = CASE WHEN ${on} THEN NULL ELSE disabled_reason END,
              failing_since = CASE WHEN ${on} AND NOT active THEN NULL ELSE failing_since END,
              -- health is the URL's: a new URL starts unproven (one delivery at a time until it answers), a
              -- re-activated endpoint with a clean slate of failures
              consecutive_failures = CASE WHEN url <> ${url} OR (${on} AND NOT active) THEN 0 ELSE consecutive_failures END,
              last_success_at = CASE WHEN url <> ${url} THEN NULL ELSE last_success_at END,
              updated_at = now()
            WHERE id = ${current.id}
            RETURNING ${sql.literal(columns)}`.pipe(Effect.orDie)
          return toEndpoint(row!)
        }),
      remove: (id: string, owner: string | undefined) =>
        Effect.gen(function*() {
          const current = yield* find(id, owner)
          yield* sql`DELETE FROM ${endpoints} WHERE id = ${current.id}`.pipe(Effect.orDie)
          return toEndpoint(current)
        }),
      /** A new secret; the old one keeps signing alongside it for `webhookSecretOverlap`. */
      rotateSecret: (id: string, owner: string | undefined) =>
        Effect.gen(function*() {
          const current = yield* find(id, owner)
          const [row] = yield* sql<EndpointRow>`
            UPDATE ${endpoints} SET previous_secret = secret, secret = ${makeSecret()},
              previous_secret_until = now() + ${Duration.toMillis(config.webhookSecretOverlap)} * interval '1 millisecond',
              updated_at = now()
            WHERE id = ${current.id}
            RETURNING ${sql.literal(columns)}`.pipe(Effect.orDie)
          return withSecret(row!)
        }),
      /** The endpoint's deliveries, newest first, with their attempts. */
      deliveries: (id: string, owner: string | undefined, options: { readonly page?: number | undefined; readonly limit?: number | undefined }) =>
        Effect.gen(function*() {
          const current = yield* find(id, owner)
          const page = options.page === undefined ? 1 : yield* decodePage(options.page)
          const limit = options.limit === undefined ? config.defaultPageSize : yield* decodeLimit(options.limit)
          const rows = yield* sql<{
            id: string
            eventId: string
            jobId: string
            type: string | null
            eventType: StoredEventType | null
            eventStatus: JobStatus | null
            status: "pending" | "succeeded" | "failed"
            nextAttemptAt: Date
            createdAt: Date
            finishedAt: Date | null
            total: number
          }>`SELECT d.id, d.event_id AS "eventId", d.job_id AS "jobId", d.type, e.type AS "eventType",
                e.status AS "eventStatus", d.status, d.next_attempt_at AS "nextAttemptAt",
                d.created_at AS "createdAt", d.finished_at AS "finishedAt", count(*) OVER ()::int AS total
              FROM ${deliveries} d LEFT JOIN ${events} e ON e.job_id = d.job_id AND e.version = d.version
              WHERE d.endpoint_id = ${current.id}
              ORDER BY d.id DESC LIMIT ${limit} OFFSET ${(page - 1) * limit}`.pipe(Effect.orDie)
          const logs = rows.length === 0 ? [] : yield* sql<{
            deliveryId: string
            attempt: number
            startedAt: Date
            durationMs: number
            statusCode: number | null
            error: string | null
          }>`SELECT delivery_id AS "deliveryId", attempt, started_at AS "startedAt", duration_ms AS "durationMs",
                status_code AS "statusCode", error
              FROM ${attempts} WHERE delivery_id = ANY(${rows.map((r) => r.id)}::uuid[]) ORDER BY attempt`.pipe(Effect.orDie)
          const total = rows[0]?.total ?? 0
          return new DeliveryPage({
            deliveries: rows.map((r) =>
              new WebhookDelivery({
                id: r.id,
                eventId: r.eventId,
                jobId: r.jobId,
                // the event's envelope type, as its body says (a row from before sql/0015 whose event is gone: its own)
                type: r.eventType !== null && r.eventStatus !== null
                  ? eventTypeOf(r.eventType, r.eventStatus)
                  : r.type ?? "unknown",
                status: r.status,
                attempts: logs.filter((l) => l.deliveryId === r.id).map((l) =>
                  new DeliveryAttempt({
                    attempt: l.attempt,
                    startedAt: DateTime.unsafeFromDate(l.startedAt),
                    durationMs: l.durationMs,
                    statusCode: l.statusCode,
                    error: l.error
                  }, true)
                ),
                nextAttemptAt: r.status === "pending" ? DateTime.unsafeFromDate(r.nextAttemptAt) : null,
                createdAt: DateTime.unsafeFromDate(r.createdAt),
                finishedAt: r.finishedAt === null ? null : DateTime.unsafeFromDate(r.finishedAt)
              }, true)
            ),
            pagination: { total, page, limit, pages: Math.ceil(total / limit) }
          }, true)
        }),
      /** A job's own callback URL (at enqueue), checked as an endpoint's. */
      targetUrl
    } as const
  })
}) {}
