import { FetchHttpClient, HttpLayerRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Logger, LogLevel, Redacted, Schedule } from "effect"
import { JobId } from "../src/Domain/JobId.js"
import * as Net from "node:net"
import * as Auth from "../src/Auth.js"
import * as Client from "../src/client.js"
import { JobWatchConfig } from "../src/Config.js"
import { RoutesLive, routerConfig } from "../src/Http.js"
import { requestLogger } from "../src/Http/guards.js"
import * as JobWatch from "../src/JobWatch.js"
import { NodeServer, NodeServerLive } from "../src/Http/Server.js"
import { uniqueQueue } from "./support/fixtures.js"
import { testKeys, token } from "./support/http.js"
import * as Proxy from "./support/proxy.js"
import { request } from "./support/service.js"
import { dropSchema, freshSchema } from "./support/TestDb.js"

/** A raw TCP connection to `port`: what it received, and `closed` once the server closed it. */
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const closed = yield* Deferred.make<string>()
      const connected = yield* Deferred.make<void>()
      const socket = Net.connect(port, "127.0.0.1")
      let received = ""
      socket.on("connect", () => Deferred.unsafeDone(connected, Effect.void))
      socket.on("data", (chunk) => (received += chunk.toString()))
      socket.on("error", () => undefined)
      socket.on("close", () => Deferred.unsafeDone(closed, Effect.succeed(received)))
      yield* Deferred.await(connected)
      return { socket, closed }
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** Waits (up to 10 s) for the server to close the connection; answers what it sent before. */
const closedWithin = (closed: Deferred.Deferred<string>) =>
  Deferred.await(closed).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the server did not close the connection in 10 s") })
  )

describe("the Node server", () => {
  // reads the body, as the API's routes do; `/slow` answers after 1.5 s, past both bounds
  const slowClientServer = HttpServer.serve(
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      Effect.zipRight(
        request.url === "/slow" ? Effect.sleep("1500 millis") : Effect.void,
        Effect.as(request.text, HttpServerResponse.text("ok"))
      ))
  ).pipe(
    Layer.provideMerge(NodeServerLive),
    Layer.provide(JobWatchConfig.layer({ port: 0, headersTimeout: "300 millis", bodyTimeout: "600 millis", maxConnections: 3 }))
  )

  it.live("cuts a client whose headers or body trickle (408), not a slow answer; refuses connections over maxConnections", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(slowClientServer)
      const port = (Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress).port
      const node = Context.get(context, NodeServer)
      // headers that never end
      const headers = yield* connect(port)
      headers.socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
      assert.match(yield* closedWithin(headers.closed), /^HTTP\/1\.1 408/)
      // a body that never arrives in full
      const body = yield* connect(port)
      body.socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
      assert.match(yield* closedWithin(body.closed), /^HTTP\/1\.1 408/)
      // a request received in time may take longer than the bounds to answer (a long-poll, an event stream)
      const slow = yield* connect(port)
      slow.socket.write("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.match(yield* closedWithin(slow.closed), /^HTTP\/1\.1 200[\s\S]*ok$/)
      // three connections are served, a fourth is closed at once
      const open = yield* Effect.all([connect(port), connect(port), connect(port)])
      yield* Effect.repeat(Effect.sync(() => node.sockets.size), { until: (n) => n >= 3, schedule: Schedule.spaced("20 millis") })
        .pipe(Effect.timeout("10 seconds"))
      const fourth = yield* connect(port)
      assert.strictEqual(yield* closedWithin(fourth.closed), "")
      open[0]!.socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.match(yield* closedWithin(open[0]!.closed), /^HTTP\/1\.1 200[\s\S]*ok$/)
    }).pipe(Effect.scoped))
})

describe("a database that does not answer", () => {
  it.live("answers 503 DatabaseUnavailable with Retry-After, on HTTP and RPC; /ready names it, its error only to an admin", () =>
    Effect.gen(function*() {
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const proxy = yield* Proxy.make
      const lines: Array<{ readonly level: LogLevel.LogLevel; readonly message: string }> = []
      const capture = Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel, message: Array.isArray(message) ? message.join(" ") : String(message) })
      })
      const server = HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig, middleware: requestLogger })
        .pipe(
          Layer.provide(Auth.layerJwt),
          Layer.provide(testKeys),
          Layer.provideMerge(JobWatch.layer),
          Layer.provideMerge(NodeServerLive),
          Layer.provide(PgClient.layer({ url: Redacted.make(proxy.url), maxConnections: 4 })),
          Layer.provideMerge(JobWatchConfig.layer({ schema, port: 0, reaper: false, listenerMaxBackoff: "200 millis" }))
        )
      const context = yield* Layer.build(server).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      const port = (Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress).port
      const base = `http://127.0.0.1:${port}`
      const alice = yield* token("alice")
      const root = yield* token("root", ["admin"])
      const created = yield* request(`${base}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "down", queue: uniqueQueue() })
      })
      const id = JSON.parse(created.text).id as string
      // the event stream of a job that ended, with the token in the query string (as a browser sends it)
      const canceled = yield* request(`${base}/v1/jobs/${id}/cancel`, { method: "POST", headers: { authorization: `Bearer ${alice}` } })
      assert.strictEqual(canceled.status, 200)
      const events = yield* request(`${base}/v1/jobs/${id}/events?access_token=${alice}`)
      assert.strictEqual(events.status, 200)
      assert.match(events.text, /event: job\.canceled\n/)

      yield* proxy.cut()
      const down = yield* request(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${alice}` } })
      assert.strictEqual(down.status, 503, down.text)
      assert.strictEqual(down.headers.get("retry-after"), "5")
      assert.deepStrictEqual(JSON.parse(down.text), {
        _tag: "DatabaseUnavailable",
        message: "the database is unavailable; retry later"
      })
      const rpc = yield* Client.rpcClient({ baseUrl: base, token: alice }).pipe(Effect.provide(FetchHttpClient.layer))
      const rpcDown = yield* Effect.flip(rpc.JobGet({ id: JobId.make(id) }))
      assert.strictEqual(rpcDown._tag, "DatabaseUnavailable")
      // /ready: which dependency, not the database's own words (they name the host) unless asked by an admin
      const ready = yield* Effect.repeat(request(`${base}/ready`, { headers: { authorization: `Bearer ${alice}` } }), {
        until: (answer) => answer.status === 503 && JSON.parse(answer.text).listener.connected === false,
        times: 400
      })
      const body = JSON.parse(ready.text)
      assert.deepInclude(body, { _tag: "NotReady", database: "down" })
      assert.isNull(body.listener.lastError)
      assert.notInclude(ready.text, "127.0.0.1")
      const asAdmin = yield* Effect.repeat(request(`${base}/ready`, { headers: { authorization: `Bearer ${root}` } }), {
        until: (answer) => JSON.parse(answer.text).listener.lastError !== null,
        times: 400
      })
      assert.match(JSON.parse(asAdmin.text).listener.lastError, /ECONNREFUSED|connect|terminat/i)

      // the request log: one line each, no query string, no token; the 503s of requests at error level
      const requestLines = lines.filter((line) => /^(GET|POST|DELETE) \//.test(line.message))
      assert.isTrue(requestLines.some((line) => /^POST \/v1\/jobs 201 \d+ms$/.test(line.message) && line.level === LogLevel.Debug))
      assert.isTrue(requestLines.some((line) => new RegExp(`^GET /v1/jobs/${id}/events 200 \\d+ms$`).test(line.message)))
      assert.isTrue(requestLines.some((line) => line.message.startsWith(`GET /v1/jobs/${id} 503`) && line.level === LogLevel.Error))
      // a probe's 503 is its answer: at debug, or a load balancer probing every second would flood the log
      assert.isTrue(requestLines.some((line) => line.message.startsWith("GET /ready 503")))
      assert.isTrue(requestLines.filter((line) => line.message.startsWith("GET /ready")).every((line) => line.level === LogLevel.Debug))
      const everything = lines.map((line) => line.message).join("\n")
      assert.notInclude(everything, alice)
      assert.notInclude(everything, "access_token")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
