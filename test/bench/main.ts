// `npm run bench [-- name ...]`: runs the named benchmarks (all when none is named) against DATABASE_URL, else
// the PostgreSQL on 127.0.0.1:5432 when it answers, else a throwaway embedded PostgreSQL 18. Each run works in
// a fresh schema, dropped at the end. Figures are printed, never asserted.
import { NodeRuntime } from "@effect/platform-node"
import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import type { Scope } from "effect"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import type { JobWatchConfigInput } from "../../src/Config.js"
import { JobWatchConfig } from "../../src/Config.js"
import * as EmbeddedPostgres from "../../src/Database/EmbeddedPostgres.js"
import * as JobWatch from "../../src/JobWatch.js"
import { Repos } from "../support/repos.js"
import { Notifications } from "../../src/Notifications.js"
import { enqueue } from "./enqueue.js"
import { http } from "./http.js"
import { latency } from "./latency.js"
import { lifecycle } from "./lifecycle.js"
import { limits } from "./limits.js"
import { progress } from "./progress.js"
import { amqpBench, benchExchanges, brokerUrl } from "./amqp.js"
import { socketsBench } from "./sockets.js"
import { streamsBench } from "./streams.js"
import { answers, machinePostgres } from "../support/machinePostgres.js"
import { waiters } from "./waiters.js"
import { waiterMemory } from "./waiterMemory.js"
import { webhooks } from "./webhooks.js"

type Services = JobWatch.Services | Repos | Notifications | PgClient.PgClient | SqlClient.SqlClient | JobWatchConfig

const benches: Record<string, (url: string) => Effect.Effect<void, unknown, Services | Scope.Scope>> = {
  enqueue,
  latency,
  waiters,
  waiterMemory,
  lifecycle,
  progress,
  http,
  limits,
  webhooks,
  streams: streamsBench,
  sockets: socketsBench,
  amqp: amqpBench
}

/** Settings a benchmark needs beside the defaults. */
const settings: Partial<Record<string, JobWatchConfigInput>> = {
  // its receivers are on loopback
  webhooks: { webhookAllowPrivate: true },
  // the relay is started by the bench itself, after its backlog
  amqp: {
    amqpUrl: brokerUrl,
    amqpExchange: benchExchanges.exchange,
    amqpErpExchange: benchExchanges.erpExchange,
    amqpRelay: false
  }
}

const database = Effect.gen(function*() {
  const explicit = process.env.DATABASE_URL
  if (explicit !== undefined && explicit !== "") return { url: explicit, kind: "DATABASE_URL" }
  if (yield* Effect.promise(() => answers(machinePostgres))) return { url: machinePostgres, kind: "PostgreSQL on 127.0.0.1:5432" }
  const cluster = yield* EmbeddedPostgres.startThrowaway
  return { url: Redacted.value(cluster.url), kind: "a throwaway embedded PostgreSQL 18" }
})

const program = Effect.gen(function*() {
  const names = process.argv.slice(2).filter((arg) => arg !== "--")
  const unknown = names.filter((name) => !(name in benches))
  if (unknown.length > 0) {
    console.error(`unknown benchmark ${unknown.join(", ")}; known: ${Object.keys(benches).join(", ")}`)
    return process.exitCode = 1
  }
  const { url, kind } = yield* database
  const version = yield* Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const { rows } = await client.query<{ server_version: string }>("SHOW server_version")
    await client.end()
    return rows[0]?.server_version ?? "?"
  })
  console.log(`database: ${kind}, PostgreSQL ${version}; node ${process.version}`)
  for (const name of names.length === 0 ? Object.keys(benches) : names) {
    const schema = `jwbench_${randomBytes(4).toString("hex")}`
    const services = Layer.mergeAll(
      JobWatch.layer,
      Layer.mergeAll(Repos.Default, Notifications.Default).pipe(Layer.provide(JobWatch.MigrationsLive))
    ).pipe(
      Layer.provideMerge(Layer.merge(
        PgClient.layer({ url: Redacted.make(url), maxConnections: 20, applicationName: "jobwatch-bench" }),
        JobWatchConfig.layer({ schema, ...settings[name] })
      ))
    )
    const dropSchema = Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await client.end()
    })
    console.log(`\n== ${name}`)
    yield* Effect.scoped(benches[name]!(url)).pipe(
      Effect.provide(services),
      Effect.ensuring(dropSchema),
      Effect.withLogSpan(name)
    )
  }
  return 0
})

NodeRuntime.runMain(Effect.scoped(program).pipe(Effect.provide(Layer.empty)), { disableErrorReporting: false })
