import { HttpApiBuilder, HttpServerRequest } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option, Redacted } from "effect"
import { Api } from "../Api.js"
import { Authentication } from "../Auth/Api.js"
import * as Auth from "../Auth.js"
import { Listener } from "../EventLog.js"
import { AmqpRelay } from "../Amqp/Relay.js"
import { JobWatchConfig } from "../Config.js"
import { Health, NotReady, Readiness } from "./Api.js"

/**
 * `/health` and `/ready` (the database answers within 2 s and the LISTEN connection is up). `/ready` names the
 * dependency that is down; the listener's last error (the database's own words: host, user) only to an admin; with
 * the event bus on, the relay's lag (which never makes the service unready).
 */
export const OpsLive = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const listener = yield* Listener
    const authentication = yield* Authentication
    const callerIsAdmin = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const token = Auth.bearerOf(request.headers["authorization"])
      if (token === "") return false
      return yield* authentication.bearer(Redacted.make(token)).pipe(
        Effect.map((user) => user.isAdmin),
        Effect.orElseSucceed(() => false)
      )
    })
    const config = yield* JobWatchConfig
    const relay = yield* Effect.serviceOption(AmqpRelay)
    /** The relay's lag (see `Readiness.eventBus`), when the event bus is on; a failed read is no answer. */
    const eventBus = Option.isNone(config.amqpUrl)
      ? Effect.succeed(undefined)
      : Effect.gen(function*() {
        const rows = yield* sql.unsafe<{ cursor: boolean; lag: number | null }>(
          `SELECT true AS cursor, (SELECT extract(epoch FROM now() - e.created_at)::float8
             FROM "${config.schema}".job_events e
             WHERE (e.tx, e.job_id, e.version) > (r.tx, r.job_id, r.version)
             ORDER BY e.tx, e.job_id, e.version LIMIT 1) AS lag
           FROM "${config.schema}".amqp_relay r`
        )
        const leader = Option.isSome(relay) && (yield* relay.value.stats).leader
        const row = rows[0]
        return { lagSeconds: row === undefined ? null : Math.max(0, row.lag ?? 0), relay: leader }
      }).pipe(Effect.timeout(Duration.seconds(2)), Effect.orElseSucceed(() => undefined))
    const databaseUp = sql`SELECT 1`.pipe(
      Effect.timeout(Duration.seconds(2)),
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    return handlers
      .handle("health", () => Effect.succeed(Health.make({ status: "ok" })))
      .handle("ready", () =>
        Effect.gen(function*() {
          const [up, state, bus] = yield* Effect.all([databaseUp, listener.currentState, eventBus], { concurrency: 3 })
          const health = {
            connected: state.connected,
            since: state.since.toISOString(),
            reconnects: state.reconnects,
            lastError: Option.isSome(state.lastError) && (yield* callerIsAdmin) ? state.lastError.value : null
          }
          if (up && state.connected) {
            return Readiness.make({
              status: "ready",
              database: "up",
              listener: health,
              ...(bus === undefined ? {} : { eventBus: bus })
            })
          }
          return yield* new NotReady({
            message: up ? "the LISTEN connection is down" : "the database does not answer",
            database: up ? "up" : "down",
            listener: health
          })
        }))
  }))
