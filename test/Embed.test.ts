import { FetchHttpClient, HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { Client, JobWatch, Worker } from "../src/index.js"
import { uniqueQueue } from "./support/fixtures.js"
import { HostRoutes, HostSockets } from "./support/hostApp.js"
import * as Http from "node:http"
import { io } from "socket.io-client"
import { Jobs } from "../src/Jobs.js"
import { eventually } from "./support/workers.js"
import * as TestDb from "./support/TestDb.js"

/** The host app served on a test server, over jobwatch on a fresh schema. */
const hostLayer = HttpLayerRouter.serve(HostRoutes, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(JobWatch.layer),
  Layer.provideMerge(TestDb.layer({ reaper: false })),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

const fetchJson = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    return { status: response.status, text, headers: response.headers, body: text.startsWith("{") ? JSON.parse(text) : undefined }
  })

describe("embedding jobwatch in a host Effect app", () => {
  layer(hostLayer, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("the host's route, jobwatch's HTTP and RPC routes, the host's API-key auth, and a Worker.run over HTTP", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const hello = yield* fetchJson(`${base}/hello`)
        assert.deepStrictEqual([hello.status, hello.text], [200, "hello from the host"])
        const queue = uniqueQueue("embed")
        const alice = { "x-api-key": "key-alice", "content-type": "application/json" }

        // jobwatch's body limits, mounted by the host: a body nested 10,000 deep is a 400, a JSON body sent as
        // multipart a 415 (without them: a 500 from the platform's multipart parser)
        const deep = yield* fetchJson(`${base}/v1/jobs`, {
          method: "POST",
          headers: alice,
          body: `{"name":"deep","payload":${"[".repeat(10_000)}${"]".repeat(10_000)}}`
        })
        assert.strictEqual(deep.status, 400, deep.text)
        const multipart = yield* fetchJson(`${base}/v1/jobs`, {
          method: "POST",
          headers: { "x-api-key": "key-alice", "content-type": "multipart/form-data; boundary=x" },
          body: JSON.stringify({ name: "a JSON body, sent as multipart" })
        })
        assert.strictEqual(multipart.status, 415, multipart.text)

        // the host's authentication: no key (or a JWT-shaped one) is 401
        assert.strictEqual((yield* fetchJson(`${base}/v1/jobs`)).status, 401)
        assert.strictEqual((yield* fetchJson(`${base}/v1/jobs`, { headers: { authorization: "Bearer x.y.z" } })).status, 401)

        // a worker in "another process": Worker.run over the HTTP API, authenticated by the host's key
        const workerScope = yield* Scope.make()
        yield* Worker.run({
          queues: [queue],
          concurrency: 2,
          claimWait: "2 seconds",
          handler: (job, ctx) =>
            Effect.gen(function*() {
              yield* ctx.progress(50, { step: "half" })
              return { doubled: (job.payload as { n: number }).n * 2 }
            })
        }).pipe(
          Scope.extend(workerScope),
          Effect.provide(Client.httpWorkerBackend({ baseUrl: base, headers: { "x-api-key": "key-worker" }, workerNamespace: "render-service" })),
          Effect.provide(FetchHttpClient.layer)
        )

        // a job through HTTP: enqueued by alice, awaited with a long-poll
        const created = yield* fetchJson(`${base}/v1/jobs`, {
          method: "POST",
          headers: alice,
          body: JSON.stringify({ name: "double", queue, payload: { n: 21 } })
        })
        assert.strictEqual(created.status, 201)
        const polled = yield* fetchJson(`${base}/v1/jobs/${created.body.id}`, { headers: { ...alice, prefer: "wait=20" } })
        assert.deepInclude(polled.body, { status: "completed", owner: "alice", result: { doubled: 42 } })

        // a job through RPC: enqueued and awaited by alice; bob cannot see it
        const rpc = yield* Client.rpcClient({ baseUrl: base, headers: { "x-api-key": "key-alice" } }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        const ref = yield* rpc.JobEnqueue({ name: "double", queue, payload: { n: 5 } })
        const outcome = yield* rpc.JobWait({ id: ref.id }).pipe(Effect.timeout("20 seconds"))
        assert.strictEqual(outcome.status, "completed")
        assert.deepStrictEqual(outcome.result, { doubled: 10 })
        const bob = yield* Client.rpcClient({ baseUrl: base, headers: { "x-api-key": "key-bob" } }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        assert.strictEqual((yield* Effect.flip(bob.JobGet({ id: ref.id })))._tag, "JobNotFound")
        const http = yield* Client.httpClient({ baseUrl: base, headers: { "x-api-key": "key-alice" } }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        const info = yield* http.jobs.get({ path: { id: ref.id }, headers: {}, urlParams: {} })
        assert.strictEqual(info.progress.percent, 100)
        yield* Scope.close(workerScope, Exit.void)

        // the dashboard, mounted by the host: signed in with the host's own key, alice's jobs and not bob's
        const login = yield* fetchJson(`${base}/dashboard/login`)
        const loginCookie = /jobwatch_dashboard_login=[^;]+/.exec(login.headers.get("set-cookie") ?? "")![0]
        const csrf = /name="_csrf" value="([^"]+)"/.exec(login.text)![1]!
        const signedIn = yield* fetchJson(`${base}/dashboard/login`, {
          method: "POST",
          redirect: "manual",
          headers: { cookie: loginCookie, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ _csrf: csrf, token: "key-alice", next: "/dashboard/jobs" }).toString()
        })
        assert.strictEqual(signedIn.status, 303, signedIn.text)
        const session = /jobwatch_dashboard=[^;]+/.exec(signedIn.headers.get("set-cookie") ?? "")![0]
        yield* fetchJson(`${base}/v1/jobs`, { method: "POST", headers: { "x-api-key": "key-bob", "content-type": "application/json" }, body: JSON.stringify({ name: "bobs-own", queue }) })
        const list = yield* fetchJson(`${base}/dashboard/jobs?queue=${queue}`, { headers: { cookie: session } })
        assert.strictEqual(list.status, 200)
        assert.include(list.text, `/dashboard/jobs/${ref.id}`)
        assert.notInclude(list.text, "bobs-own")
      }))
  })

  // the host serves its own http.Server, so that Socket.IO can take its requests and upgrades
  const server = Http.createServer()
  const withSockets = Layer.mergeAll(
    HttpLayerRouter.serve(HostRoutes, { disableLogger: true, disableListenLog: true }),
    HostSockets(server)
  ).pipe(
    Layer.provideMerge(JobWatch.layer),
    Layer.provideMerge(TestDb.layer({ reaper: false })),
    Layer.provideMerge(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
  )
  layer(withSockets, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("the host's own server with SocketIo.layer: its API-key auth, its routes beside, a job followed to its end", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        assert.strictEqual((yield* fetchJson(`${base}/hello`)).text, "hello from the host")
        const jobs = yield* Jobs
        const ref = yield* jobs.enqueue({ name: "embedded", queue: uniqueQueue("embed"), owner: "alice" })
        const connect = (key: string) =>
          Effect.acquireRelease(
            Effect.async<ReturnType<typeof io>, Error>((resume) => {
              const socket = io(base, { auth: { token: key }, transports: ["websocket"], reconnection: false, forceNew: true })
              socket.once("connect", () => resume(Effect.succeed(socket)))
              socket.once("connect_error", (error) => resume(Effect.fail(error)))
            }),
            (socket) => Effect.sync(() => socket.close())
          )
        assert.strictEqual((yield* Effect.flip(connect("key-nobody"))).message, "unauthorized")
        const socket = yield* connect("key-alice")
        const canceled: Array<Record<string, unknown>> = []
        socket.on(`job:${ref.id}:canceled`, (data: Record<string, unknown>) => canceled.push(data))
        const ack = yield* Effect.promise(() => socket.timeout(10_000).emitWithAck("subscribe:job", ref.id))
        assert.deepStrictEqual(ack, { ok: true, version: 1 })
        yield* jobs.cancel(ref.id, { owner: "alice" })
        yield* eventually(Effect.sync(() => canceled.length), (n) => n > 0)
        assert.deepInclude(canceled[0], { jobId: ref.id, status: "canceled", version: 2 })
      }))
  })
})
