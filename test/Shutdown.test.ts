import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { JobId } from "../src/Domain/JobId.js"
import pg from "pg"
import * as Client from "../src/client.js"
import * as Worker from "../src/Workers/Worker.js"
import { uniqueQueue } from "./support/fixtures.js"
import * as Proxy from "./support/proxy.js"
import { secret, token } from "./support/http.js"
import {
  baseOf,
  isRunning,
  openSse,
  postmasterOf,
  request,
  startService,
  stopWith,
  tempDir
} from "./support/service.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"
import { io } from "socket.io-client"

const jwtSecret = new TextDecoder().decode(secret)
const shutdownSeconds = 3

/** Waits (really, up to 20 s, every 50 ms) until `check` holds. */
const eventually = (what: string, check: () => Promise<boolean> | boolean) =>
  Effect.promise(async () => {
    for (let i = 0; i < 400; i++) {
      if (await check()) return
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`still not so after 20 s: ${what}`)
  })

/**
 * Starts `held` (a request that takes the user's one stream slot) and answers its fiber once `probe` (a short
 * request needing a slot too) is refused with 429: then the server holds `held`. A probe that won the race for the
 * slot makes `held` fail with 429; it is started again. After 20 tries it answers `held` as it is (a service
 * without limits never refuses the probe: the assertions that follow then tell what went wrong).
 */
const holdSlot = <A, E>(held: Effect.Effect<A, E>, probe: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    let probes = 0
    while (true) {
      const fiber = yield* Effect.fork(held)
      // lets `held` go out first (correctness does not depend on it: a probe that wins is retried)
      yield* Effect.sleep("100 millis")
      while (Option.isNone(yield* Fiber.poll(fiber))) {
        if (++probes > 20 || (yield* probe)) return fiber
      }
    }
  })

const enqueue = (base: string, bearer: string, queue: string) =>
  Effect.map(
    request(`${base}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "held", queue })
    }),
    (response) => JSON.parse(response.text).id as string
  )

// the processes start side by side (most of each test is a start); each waits on its own service only
describe.concurrent("shutdown of the real process (node --import tsx src/main.ts)", () => {
  it.live("SIGTERM with a long-poll, SSE streams, an RPC stream, an RPC wait and an HTTP Worker.run open: exit 0 within the timeout", () =>
    Effect.gen(function*() {
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const dataDir = yield* tempDir
      const service = yield* startService({
        DATABASE_URL: databaseUrl(),
        JOBWATCH_SCHEMA: schema,
        JOBWATCH_DATA_DIR: dataDir,
        JOBWATCH_JWT_SECRET: jwtSecret,
        JOBWATCH_SHUTDOWN_TIMEOUT: `${shutdownSeconds}s`,
        JOBWATCH_LOG_LEVEL: "debug",
        // one slot per user: a second long-poll's 429 shows that the first one is held by the server
        JOBWATCH_MAX_STREAMS_PER_USER: "1",
        PORT: "0",
        HOST: "127.0.0.1"
      })
      const base = yield* baseOf(service)
      const [alice, bob, carol, dave, erin, worker] = yield* Effect.all([
        token("alice"),
        token("bob"),
        token("carol"),
        token("dave"),
        token("erin"),
        token("worker", ["worker"])
      ])
      const queue = uniqueQueue("shutdown")
      const carolsJob = yield* enqueue(base, carol, queue)
      const davesJob = yield* enqueue(base, dave, queue)
      const erinsJob = yield* enqueue(base, erin, queue)

      // a long-poll of 60 s
      const poll = yield* holdSlot(
        request(`${base}/v1/jobs/${carolsJob}`, { headers: { authorization: `Bearer ${carol}`, prefer: "wait=60" } }),
        Effect.map(
          request(`${base}/v1/jobs/${carolsJob}`, { headers: { authorization: `Bearer ${carol}`, prefer: "wait=1" } }),
          (probe) => probe.status === 429
        )
      )
      // SSE streams: all of alice's events (the token in the query, as a browser sends it), one of bob's jobs
      const aliceStream = yield* openSse(`${base}/v1/events?access_token=${alice}`)
      const bobsJob = yield* enqueue(base, bob, queue)
      const bobStream = yield* openSse(`${base}/v1/jobs/${bobsJob}/events`, { authorization: `Bearer ${bob}` })
      assert.strictEqual(yield* Deferred.await(aliceStream.opened), 200)
      assert.strictEqual(yield* Deferred.await(bobStream.opened), 200)
      // an RPC JobWatch stream, and an RPC wait that never ends by itself (closed at the deadline)
      const rpcLayer = FetchHttpClient.layer
      const daveRpc = yield* Client.rpcClient({ baseUrl: base, token: dave }).pipe(Effect.provide(rpcLayer))
      const firstEvent = yield* Deferred.make<void>()
      const watch = yield* Effect.fork(
        daveRpc.JobWatch({ id: JobId.make(davesJob) }).pipe(Stream.tap(() => Deferred.succeed(firstEvent, undefined)), Stream.runCollect)
      )
      yield* Deferred.await(firstEvent)
      const erinRpc = yield* Client.rpcClient({ baseUrl: base, token: erin }).pipe(Effect.provide(rpcLayer))
      yield* Effect.fork(erinRpc.JobWait({ id: JobId.make(erinsJob) }))
      // Worker.run over HTTP, waiting in a claim on the server
      const workerQueue = uniqueQueue("shutdown-worker")
      yield* Worker.run({ workerId: "worker:shutdown-1", queues: [workerQueue], handler: () => Effect.never }).pipe(
        Effect.provide(Client.httpWorkerBackend({ baseUrl: base, token: worker }).pipe(Layer.provideMerge(rpcLayer)))
      )
      const db = new pg.Client({ connectionString: databaseUrl() })
      yield* Effect.acquireRelease(Effect.promise(() => db.connect()), () => Effect.promise(() => db.end()))
      yield* eventually("the worker's claim reached the server", async () =>
        (await db.query(`SELECT 1 FROM "${schema}".workers WHERE id = 'worker:shutdown-1'`)).rowCount === 1)

      const stopped = yield* stopWith(service, "SIGTERM")
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, (shutdownSeconds + 1) * 1000, service.output())
      // the long-poll answered the job as it is, as a timed-out wait does
      const answer = yield* Fiber.join(poll)
      assert.strictEqual(answer.status, 200, answer.text)
      assert.deepInclude(JSON.parse(answer.text), { id: carolsJob, status: "pending" })
      // the streams ended: SSE cleanly, the RPC stream with success
      const aliceEnd = yield* Deferred.await(aliceStream.ended)
      assert.isUndefined(aliceEnd.error)
      assert.isUndefined((yield* Deferred.await(bobStream.ended)).error)
      const watched = yield* Fiber.await(watch)
      assert.isTrue(Exit.isSuccess(watched), String(watched))
      // one line when it starts stopping, one when it is done
      const output = service.output()
      assert.strictEqual(output.match(/stopping: draining/g)?.length, 1, output)
      assert.match(output, /stopped in [\d.]+m?s/)
      // request logs at debug: one line each, without the query string (the SSE token) or any header
      assert.match(output, /GET \/v1\/events 200 \d+ms/)
      for (const bearer of [alice, bob, carol, dave, erin, worker]) assert.notInclude(output, bearer)
      assert.notInclude(output, "access_token")
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("SIGTERM with Socket.IO clients connected (websocket and polling, one following a job): exit 0 within the timeout", () =>
    Effect.gen(function*() {
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const service = yield* startService({
        DATABASE_URL: databaseUrl(),
        JOBWATCH_SCHEMA: schema,
        JOBWATCH_DATA_DIR: yield* tempDir,
        JOBWATCH_JWT_SECRET: jwtSecret,
        JOBWATCH_SHUTDOWN_TIMEOUT: `${shutdownSeconds}s`,
        PORT: "0",
        HOST: "127.0.0.1"
      })
      const base = yield* baseOf(service)
      const user = yield* token("iris")
      const id = yield* enqueue(base, user, uniqueQueue("sio"))
      const disconnected: Array<string> = []
      for (const transport of ["websocket", "polling"] as const) {
        const socket = yield* Effect.acquireRelease(
          Effect.async<ReturnType<typeof io>, Error>((resume) => {
            const socket = io(base, { auth: { token: user }, transports: [transport], reconnection: false, forceNew: true })
            socket.once("connect", () => resume(Effect.succeed(socket)))
            socket.once("connect_error", (error) => resume(Effect.fail(error)))
          }),
          (socket) => Effect.sync(() => socket.close())
        )
        socket.on("disconnect", (reason) => disconnected.push(reason))
        const ack = yield* Effect.promise(() => socket.timeout(10_000).emitWithAck("subscribe:job", id))
        assert.deepInclude(ack, { ok: true })
      }
      const stopped = yield* stopWith(service, "SIGTERM")
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, (shutdownSeconds + 1) * 1000, service.output())
      yield* eventually("both sockets saw the server go", () => disconnected.length === 2)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("SIGTERM while the database is down, with a long-poll open: exit 0 within the timeout", () =>
    Effect.gen(function*() {
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const proxy = yield* Proxy.make
      const dataDir = yield* tempDir
      const service = yield* startService({
        DATABASE_URL: proxy.url,
        JOBWATCH_SCHEMA: schema,
        JOBWATCH_DATA_DIR: dataDir,
        JOBWATCH_JWT_SECRET: jwtSecret,
        JOBWATCH_SHUTDOWN_TIMEOUT: `${shutdownSeconds}s`,
        JOBWATCH_LISTENER_MAX_BACKOFF: "200 millis",
        JOBWATCH_MAX_STREAMS_PER_USER: "1",
        PORT: "0",
        HOST: "127.0.0.1"
      })
      const base = yield* baseOf(service)
      const alice = yield* token("alice")
      const id = yield* enqueue(base, alice, uniqueQueue("down"))
      const poll = yield* holdSlot(
        request(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${alice}`, prefer: "wait=60" } }),
        Effect.map(
          request(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${alice}`, prefer: "wait=1" } }),
          (probe) => probe.status === 429
        )
      )
      yield* proxy.cut()
      yield* eventually("the service sees the database down", async () =>
        (await fetch(`${base}/ready`).then((r) => r.status)) === 503)
      const stopped = yield* stopWith(service, "SIGTERM")
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, (shutdownSeconds + 1) * 1000, service.output())
      // the long-poll was answered: the job's state cannot be read, so 503
      const answer = yield* Fiber.join(poll)
      assert.strictEqual(answer.status, 503, answer.text)
      assert.strictEqual(JSON.parse(answer.text)._tag, "DatabaseUnavailable")
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("Ctrl-C on the embedded database (SIGINT to the process group): exit 0 within the timeout, no PostgreSQL left", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const service = yield* startService({
        DATABASE_URL: "",
        JOBWATCH_DATA_DIR: dataDir,
        JOBWATCH_SHUTDOWN_TIMEOUT: `${shutdownSeconds}s`,
        PORT: "0",
        HOST: "127.0.0.1"
      }, { detached: true, dataDir })
      const admin = (yield* service.waitFor(/Admin token \(24 h\):\s+(\S+)/))[1]!
      const base = yield* baseOf(service)
      const postmaster = postmasterOf(dataDir)
      assert.isDefined(postmaster)
      const stream = yield* openSse(`${base}/v1/events?access_token=${admin}`)
      assert.strictEqual(yield* Deferred.await(stream.opened), 200)
      const stopped = yield* stopWith(service, "SIGINT", true)
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, (shutdownSeconds + 1) * 1000, service.output())
      assert.isFalse(isRunning(postmaster!), "PostgreSQL still runs after jobwatch exited")
      // at the default level (info) requests are not logged
      assert.notMatch(service.output(), /GET \/v1\/events/)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("a second signal exits at once, and still stops the embedded database", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const service = yield* startService({
        DATABASE_URL: "",
        JOBWATCH_DATA_DIR: dataDir,
        JOBWATCH_JWT_SECRET: jwtSecret,
        // a drain that would wait long for the RPC wait below
        JOBWATCH_SHUTDOWN_TIMEOUT: "60s",
        JOBWATCH_MAX_STREAMS_PER_USER: "1",
        PORT: "0",
        HOST: "127.0.0.1"
      }, { dataDir })
      const base = yield* baseOf(service)
      const postmaster = postmasterOf(dataDir)
      assert.isDefined(postmaster)
      const frank = yield* token("frank")
      const id = yield* enqueue(base, frank, uniqueQueue("twice"))
      const rpc = yield* Client.rpcClient({ baseUrl: base, token: frank }).pipe(Effect.provide(FetchHttpClient.layer))
      yield* holdSlot(
        rpc.JobWait({ id: JobId.make(id) }),
        Effect.map(Effect.either(rpc.JobGet({ id: JobId.make(id), wait: Duration.millis(1) })), (probe) =>
          probe._tag === "Left" && probe.left._tag === "TooManyRequests")
      )
      process.kill(service.pid, "SIGTERM")
      yield* service.waitFor(/stopping: draining/)
      const stopped = yield* stopWith(service, "SIGTERM")
      assert.strictEqual(stopped.code, 143, service.output())
      assert.isBelow(stopped.took, 5000, service.output())
      assert.isFalse(isRunning(postmaster!), "PostgreSQL still runs after jobwatch exited")
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
