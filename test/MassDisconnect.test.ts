import { HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Schedule } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"
import pg from "pg"
import * as Auth from "../src/Auth.js"
import { JobWatchConfig } from "../src/Config.js"
import { RoutesLive, routerConfig } from "../src/Http.js"
import * as JobWatch from "../src/JobWatch.js"
import { testKeys, token } from "./support/http.js"
import { databaseUrl, freshSchema } from "./support/TestDb.js"

/** Waits (polling every 20 ms, at most `seconds`) until `check` holds; fails naming `what` otherwise. */
const until = (what: string, check: () => boolean, seconds = 60) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(`not yet: ${what}`))).pipe(
    Effect.retry(Schedule.spaced(Duration.millis(20))),
    Effect.timeoutFail({ duration: Duration.seconds(seconds), onTimeout: () => new Error(`timed out waiting: ${what}`) })
  )

/**
 * The pool's callback hands a released client synchronously to the next waiter, and @effect/sql-pg released an
 * interrupted waiter's client from inside that callback: a run of thousands of waiters interrupted at once (streams
 * whose clients all left) recursed through them and overflowed the stack (patches/@effect+sql-pg+0.53.0.patch).
 */
describe("thousands of waiters for the pool interrupted at once", () => {
  it.live("5,000 queries interrupted while they wait for a connection leave the pool serving", () =>
    Effect.gen(function*() {
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
      const program = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const release = yield* Deferred.make<void>()
        const holding = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          sql.withTransaction(Deferred.succeed(holding, undefined).pipe(Effect.zipRight(Deferred.await(release))))
        )
        yield* Deferred.await(holding)
        const waiters = yield* Effect.forEach(Array.from({ length: 5000 }), () => Effect.fork(sql`SELECT 1`))
        yield* until("5,000 waiters queued", () => pool.waitingCount === 5000)
        yield* Fiber.interruptAll(waiters)
        yield* Deferred.succeed(release, undefined)
        // before the fix, this release threw RangeError: Maximum call stack size exceeded
        yield* Fiber.join(holder)
        const rows = yield* sql<{ x: number }>`SELECT 2 AS x`.pipe(Effect.timeout(Duration.seconds(20)))
        assert.deepStrictEqual(rows.map((r) => r.x), [2])
        yield* until("the queue drained", () => pool.waitingCount === 0)
        assert.strictEqual(pool.totalCount, pool.idleCount)
      })
      yield* program.pipe(
        Effect.provide(PgClient.layerFromPool({
          acquire: Effect.acquireRelease(Effect.succeed(pool), (p) => Effect.promise(() => p.end()))
        }))
      )
    }), { timeout: 90_000 })

  it.live("5,000 /v1/events clients leaving at once while their streams wait for the pool: the process keeps serving", () =>
    Effect.gen(function*() {
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 20, application_name: "jobwatch-test" })
      let server: Http.Server | undefined
      const schema = freshSchema()
      const database = Layer.merge(
        PgClient.layerFromPool({ acquire: Effect.acquireRelease(Effect.succeed(pool), (p) => Effect.promise(() => p.end())) }),
        JobWatchConfig.layer({
          schema,
          reaper: false,
          webhooks: false,
          refreshInterval: null,
          maxStreamsPerUser: null,
          rateLimit: null
        })
      )
      const dropSchema = Layer.scopedDiscard(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.addFinalizer(() => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).pipe(Effect.ignore))))
      const serverLayer = HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }).pipe(
        Layer.provide(Auth.layerJwt),
        Layer.provide(testKeys),
        Layer.provideMerge(JobWatch.layer),
        Layer.provideMerge(Layer.provideMerge(dropSchema, database)),
        Layer.provide(NodeHttpServer.layer(() => (server = Http.createServer()), { port: 0, host: "127.0.0.1" }))
      )
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { port } = server!.address() as Net.AddressInfo
        let connections = 0
        server!.on("connection", (socket) => {
          connections++
          socket.on("close", () => connections--)
        })
        const alice = yield* token("alice")
        const sockets: Array<Net.Socket> = []
        /** Opens one SSE stream on a raw socket; resolves once the stream has sent its first line. */
        const open = () =>
          Effect.async<void, Error>((resume) => {
            const socket = Net.connect(port, "127.0.0.1")
            sockets.push(socket)
            let seen = ""
            socket.on("data", (chunk: Buffer) => {
              if (seen.includes("retry:")) return
              seen += chunk.toString()
              if (seen.includes("retry:")) resume(Effect.void)
            })
            socket.on("error", (e) => resume(Effect.fail(e)))
            socket.write(`GET /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${alice}\r\n\r\n`)
          })
        // the accept backlog is bounded: open them 250 at a time
        for (let i = 0; i < 20; i++) yield* Effect.all(Array.from({ length: 250 }, open), { concurrency: "unbounded" })

        // every pool connection held, then a doorbell: the streams' one tail queues its read for the pool (before the
        // stream tail, each of the 5,000 streams queued its own)
        const release = yield* Deferred.make<void>()
        let held = 0
        const holders = yield* Effect.forEach(Array.from({ length: 20 }), () =>
          Effect.fork(sql.withTransaction(Effect.sync(() => held++).pipe(Effect.zipRight(Deferred.await(release))))))
        yield* until("every pool connection held", () => held === 20)
        const bell = new pg.Client({ connectionString: databaseUrl() })
        yield* Effect.promise(() => bell.connect())
        yield* Effect.promise(() => bell.query("SELECT pg_notify($1, '*')", [`${schema}.doorbell`]))
        yield* Effect.promise(() => bell.end())
        yield* until("the tail's read queued for the pool", () => pool.waitingCount >= 1)

        // every client leaves at once; the server interrupts their streams, still waiting for the pool
        for (const socket of sockets) socket.destroy()
        yield* until("the server saw every client leave", () => connections === 0)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.joinAll(holders)

        // still serving: the pool drains, and HTTP and SQL answer
        yield* until("the pool's queue drained", () => pool.waitingCount === 0)
        const health = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status))
        assert.strictEqual(health, 200)
        const created = yield* Effect.promise(() =>
          fetch(`http://127.0.0.1:${port}/v1/jobs`, {
            method: "POST",
            headers: { authorization: `Bearer ${alice}`, "content-type": "application/json" },
            body: JSON.stringify({ name: "after" })
          }).then((r) => r.status)
        )
        assert.strictEqual(created, 201)
        assert.deepStrictEqual(yield* sql<{ n: number }>`SELECT 1 AS n`, [{ n: 1 }])
      }).pipe(Effect.provide(serverLayer))
    }), { timeout: 180_000 })
})
