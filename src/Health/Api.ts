import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"

/** `GET /health`: the process is up. */
export class Health extends Schema.Class<Health>("Health")({
  status: Schema.Literal("ok")
}) {}

const ListenerHealth = Schema.Struct({
  connected: Schema.Boolean,
  since: Schema.String,
  reconnects: Schema.Int,
  lastError: Schema.NullOr(Schema.String)
})

/**
 * The event bus relay, when `JOBWATCH_AMQP_URL` is set: how far behind the event log it is (the age of the oldest
 * event it has not published and had confirmed; 0 when caught up; `null` before any relay ran), and whether this
 * process is the relay. A relay behind (the broker down) does not make the service unready.
 */
const EventBusHealth = Schema.Struct({
  lagSeconds: Schema.NullOr(Schema.Number),
  relay: Schema.Boolean
})

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  status: Schema.Literal("ready"),
  database: Schema.Literal("up"),
  listener: ListenerHealth,
  eventBus: Schema.optional(EventBusHealth)
}) {}

/** A dependency (the database, or the LISTEN connection) is down. HTTP 503. */
export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  { message: Schema.String, database: Schema.Literal("up", "down"), listener: ListenerHealth },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}

export class OpsApi extends HttpApiGroup.make("ops")
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(Health)
      .annotateContext(OpenApi.annotations({
        summary: "Liveness",
        description: "Answers 200 while the process runs; touches neither the database nor the listener."
      }))
  )
  .add(
    HttpApiEndpoint.get("ready", "/ready")
      .addSuccess(Readiness)
      .addError(NotReady)
      .annotateContext(OpenApi.annotations({
        summary: "Readiness",
        description:
          "200 when the database answers within 2 s and the LISTEN connection is up; 503 NotReady naming the " +
          "dependency that is down otherwise (the listener's last error only to an admin)."
      }))
  )
  .annotate(OpenApi.Description, "Liveness and readiness for supervisors and load balancers")
{}
