import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"

/** What an endpoint subscribes to; `all` adds every other transition (`job.status.changed`, `job.deleted`). */
export const WebhookEventType = Schema.Literal("progress", "completed", "failed", "canceled", "all")
export type WebhookEventType = typeof WebhookEventType.Type

/**
 * How an endpoint's requests are written: `standard` (Standard Webhooks: `type`, `timestamp`, `data` the event
 * envelope) or `simple` (a flat `{ id, jobname, userId, progress | result | error, eventType }`, as the notification
 * system jobwatch replaces sends it). Both are signed with the Standard Webhooks headers.
 */
export const WebhookFormat = Schema.Literal("standard", "simple")
export type WebhookFormat = typeof WebhookFormat.Type

/** A user's webhook endpoint (its secret is shown only at creation and on rotation). */
export class WebhookEndpoint extends Schema.Class<WebhookEndpoint>("WebhookEndpoint")({
  id: Schema.String,
  owner: Schema.String,
  url: Schema.String,
  eventTypes: Schema.Array(WebhookEventType),
  format: WebhookFormat,
  description: Schema.NullOr(Schema.String),
  active: Schema.Boolean,
  /** Why the deliverer turned it off (410, or failing for too long); `null` while active. */
  disabledReason: Schema.NullOr(Schema.String),
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

/** An endpoint with its signing secret: at creation, and after a rotation. */
export class WebhookWithSecret extends Schema.Class<WebhookWithSecret>("WebhookWithSecret")({
  ...WebhookEndpoint.fields,
  secret: Schema.String
}) {}

export class WebhookList extends Schema.Class<WebhookList>("WebhookList")({ webhooks: Schema.Array(WebhookEndpoint) }) {}

/** One attempt of a delivery. */
export class DeliveryAttempt extends Schema.Class<DeliveryAttempt>("DeliveryAttempt")({
  attempt: Schema.Int,
  startedAt: Schema.DateTimeUtc,
  durationMs: Schema.Int,
  statusCode: Schema.NullOr(Schema.Int),
  error: Schema.NullOr(Schema.String)
}) {}

/** A delivery of one event to one endpoint, with every attempt. */
export class WebhookDelivery extends Schema.Class<WebhookDelivery>("WebhookDelivery")({
  id: Schema.String,
  eventId: Schema.String,
  jobId: Schema.String,
  type: Schema.String,
  status: Schema.Literal("pending", "succeeded", "failed"),
  attempts: Schema.Array(DeliveryAttempt),
  nextAttemptAt: Schema.NullOr(Schema.DateTimeUtc),
  createdAt: Schema.DateTimeUtc,
  finishedAt: Schema.NullOr(Schema.DateTimeUtc)
}) {}

export class DeliveryPage extends Schema.Class<DeliveryPage>("DeliveryPage")({
  deliveries: Schema.Array(WebhookDelivery),
  pagination: Schema.Struct({ total: Schema.Int, page: Schema.Int, limit: Schema.Int, pages: Schema.Int })
}) {}

/** No such webhook endpoint (or none the caller may see). HTTP 404. */
export class WebhookNotFound extends Schema.TaggedError<WebhookNotFound>()(
  "WebhookNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "The webhook endpoint does not exist or is not yours" })
) {}

/**
 * The URL's host is (or resolves to) no public unicast address: loopback, private, link-local, carrier-grade NAT,
 * documentation, benchmarking, reserved, multicast or unspecified, or an IPv6 form (mapped, compatible, NAT64, 6to4,
 * Teredo) leading to one. HTTP 422.
 */
export class WebhookTargetRefused extends Schema.TaggedError<WebhookTargetRefused>()(
  "WebhookTargetRefused",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 422, description: "The URL points into a private or reserved network" })
) {}
