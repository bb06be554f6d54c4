import { HttpApiBuilder, HttpServerRequest } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option, Redacted } from "effect"
import { Api } from "../Api.js"
import { Authentication } from "../Auth/Api.js"
import * as Auth from "../Auth.js"
import { Listener } from "../EventLog.js"
import { Health, NotReady, Readiness } from "./Api.js"

/**
 * `/health` and `/ready` (the database answers within 2 s and the LISTEN connection is up). `/ready` names the
 * dependency that is down; the listener's last error (the database's own words: host, user) only to an admin.
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
    const databaseUp = sql`SELECT 1`.pipe(
      Effect.timeout(Duration.seconds(2)),
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    return handlers
      .handle("health", () => Effect.succeed(Health.make({ status: "ok" })))
      .handle("ready", () =>
        Effect.gen(function*() {
          const [up, state] = yield* Effect.all([databaseUp, listener.currentState], { concurrency: 2 })
          const health = {
            connected: state.connected,
            since: state.since.toISOString(),
            reconnects: state.reconnects,
            lastError: Option.isSome(state.lastError) && (yield* callerIsAdmin) ? state.lastError.value : null
          }
          if (up && state.connected) return Readiness.make({ status: "ready", database: "up", listener: health })
          return yield* new NotReady({
            message: up ? "the LISTEN connection is down" : "the database does not answer",
            database: up ? "up" : "down",
            listener: health
          })
        }))
  }))
