import { HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, FiberId, Layer } from "effect"
import { NodeHttpServer } from "@effect/platform-node"
import * as NodeHttp from "node:http"
import { SocketAuthentication } from "../src/Auth/Api.js"
import { User } from "../src/Domain/Auth.js"
import * as SocketIo from "../src/SocketIo.js"
import type { Socket } from "socket.io-client"
import { io } from "socket.io-client"
import type { JobWatchConfigInput } from "../src/Config.js"
import { ServerLive } from "../src/Http/Server.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { testKeys, token } from "./support/http.js"
import { Repos } from "./support/repos.js"
import * as TestDb from "./support/TestDb.js"
import { eventually } from "./support/workers.js"
import { JobWatchConfig } from "../src/Config.js"
import { runScript } from "./support/processes.js"

/** The whole server (`ServerLive`: routes, Socket.IO, drain) on a loopback port, over jobwatch on a fresh schema. */
const socketServer = (config: JobWatchConfigInput = {}) =>
  ServerLive.pipe(
    Layer.provide(testKeys),
    Layer.provideMerge(Layer.merge(JobWatch.layer, Repos.Default.pipe(Layer.provide(JobWatch.MigrationsLive)))),
    Layer.provideMerge(TestDb.layer({
      reaper: false,
      rateLimit: null,
      maxStreamsPerUser: null,
      port: 0,
      host: "127.0.0.1",
      ...config
    }))
  )

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}`
})

interface Received {
  readonly name: string
  readonly data: Record<string, unknown>
}

type Transport = "websocket" | "polling"

/** A connected client (no reconnection) recording every event it receives; closed at the end of the scope. */
const connect = (url: string, options: { readonly auth?: object; readonly transport: Transport }) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: Socket; readonly received: Array<Received> }, Error>((resume) => {
      const socket = io(url, {
        auth: options.auth ?? {},
        transports: [options.transport],
        reconnection: false,
        forceNew: true,
        timeout: 10_000
      })
      const received: Array<Received> = []
      socket.onAny((name: string, data: Record<string, unknown>) => received.push({ name, data }))
      socket.once("connect", () => resume(Effect.succeed({ socket, received })))
      socket.once("connect_error", (error) => {
        socket.close()
        resume(Effect.fail(error))
      })
    }),
    ({ socket }) => Effect.sync(() => socket.close())
  )

/** Emits `event` with `arg` and answers the server's acknowledgement. */
const ask = (socket: Socket, event: string, arg: unknown) =>
  Effect.promise(() => socket.timeout(10_000).emitWithAck(event, arg) as Promise<Record<string, unknown>>)

describe("Socket.IO", () => {
  layer(socketServer(), { excludeTestServices: true, timeout: 90_000 })((it) => {
    for (const transport of ["websocket", "polling"] as const) {
      it.scoped(`${transport}: the notification system's client snippet hears a worker's progress and completion`, () =>
        Effect.gen(function*() {
          const jobs = yield* Jobs
          const workers = yield* Workers
          const base = yield* baseUrl
          const user = yield* token("sam")
          const queue = uniqueQueue("sio")
          const ref = yield* jobs.enqueue({ name: "render", queue, owner: "sam" })
          const { received, socket } = yield* connect(base, { auth: { token: user }, transport })
          const ack = yield* ask(socket, "subscribe:job", ref.id)
          assert.deepStrictEqual(ack, { ok: true, version: 1 })
          yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
          for (const percent of [25, 50, 75]) {
            yield* workers.progress(ref.id, { percent, force: true }, { workerId: `w-${queue}` })
          }
          yield* workers.complete(ref.id, { workerId: `w-${queue}`, result: { url: "/done" } })
          yield* eventually(Effect.sync(() => received.map((r) => r.name)), (names) =>
            names.includes("job:completed") && names.includes(`job:${ref.id}:completed`))
          // the user room: every event from the socket's start on, with its cursor, progress as a number. The stream
          // starts at the oldest transaction still running (the commit-safe rule), so with other transactions in
          // flight on the database it may begin with the enqueue (version 1), committed just before the connection
          const mine = received.filter((r) =>
            r.name.startsWith("job:") && !r.name.startsWith(`job:${ref.id}`) && r.data["version"] !== 1
          )
          assert.deepStrictEqual(mine.map((r) => r.name), ["job:status", "job:progress", "job:progress", "job:progress", "job:completed"])
          assert.deepStrictEqual(mine.map((r) => r.data["version"]), [2, 3, 4, 5, 6])
          assert.deepStrictEqual(mine.filter((r) => r.name === "job:progress").map((r) => r.data["progress"]), [25, 50, 75])
          const done = mine[mine.length - 1]!.data
          assert.strictEqual(done["jobId"], ref.id)
          assert.deepStrictEqual(done["result"], { url: "/done" })
          assert.strictEqual(done["status"], "completed")
          assert.match(String(done["cursor"]), /^\d+\.[0-9a-f-]{36}\.\d+$/)
          // the job's own events, after the version the acknowledgement named, each once and in order
          const followed = received.filter((r) => r.name.startsWith(`job:${ref.id}:`))
          assert.deepStrictEqual(followed.map((r) => r.data["version"]), [2, 3, 4, 5, 6])
          assert.deepStrictEqual(followed.map((r) => r.name.slice(`job:${ref.id}:`.length)), [
            "status",
            "progress",
            "progress",
            "progress",
            "completed"
          ])
        }))
    }

    it.scoped("subscribe:job with afterVersion replays what was missed, then goes live; unsubscribe:job stops it", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const base = yield* baseUrl
        const user = yield* token("ria")
        const queue = uniqueQueue("sio")
        const ref = yield* jobs.enqueue({ name: "render", queue, owner: "ria" })
        yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
        yield* workers.progress(ref.id, { percent: 10, force: true }, { workerId: `w-${queue}` })
        const { received, socket } = yield* connect(base, { auth: { token: user }, transport: "websocket" })
        // a client that saw version 1 before it was cut off
        assert.deepStrictEqual(yield* ask(socket, "subscribe:job", { jobId: ref.id, afterVersion: 1 }), { ok: true, version: 3 })
        yield* workers.progress(ref.id, { percent: 20, force: true }, { workerId: `w-${queue}` })
        const versions = () => received.filter((r) => r.name.startsWith(`job:${ref.id}:`)).map((r) => r.data["version"])
        yield* eventually(Effect.sync(versions), (seen) => seen.length === 3)
        assert.deepStrictEqual(versions(), [2, 3, 4])
        assert.deepStrictEqual(yield* ask(socket, "unsubscribe:job", ref.id), { ok: true })
        yield* workers.complete(ref.id, { workerId: `w-${queue}`, result: null })
        // the user room still hears the completion; the job's own channel no longer does
        yield* eventually(Effect.sync(() => received.some((r) => r.name === "job:completed")), (done) => done)
        assert.deepStrictEqual(versions(), [2, 3, 4])
      }))

    it.scoped("another user's job and an unknown or malformed id are refused in the acknowledgement", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const base = yield* baseUrl
        const theirs = yield* jobs.enqueue({ name: "secret", queue: uniqueQueue("sio"), owner: "other" })
        const { socket } = yield* connect(base, { auth: { token: yield* token("eve") }, transport: "websocket" })
        const foreign = yield* ask(socket, "subscribe:job", theirs.id)
        const unknown = yield* ask(socket, "subscribe:job", "0190a0b0-0000-7000-8000-000000000000")
        assert.deepInclude(foreign, { ok: false })
        assert.strictEqual((foreign["error"] as { _tag: string })._tag, "JobNotFound")
        assert.strictEqual((unknown["error"] as { _tag: string })._tag, "JobNotFound")
        // the same refusal: nothing tells a foreign job from an unknown one but its id
        assert.strictEqual(
          (foreign["error"] as { message: string }).message.replace(theirs.id, "<id>"),
          (unknown["error"] as { message: string }).message.replace("0190a0b0-0000-7000-8000-000000000000", "<id>")
        )
        const malformed = yield* ask(socket, "subscribe:job", { jobId: "not-an-id" })
        assert.strictEqual((malformed["error"] as { _tag: string })._tag, "InvalidInput")
        const badVersion = yield* ask(socket, "subscribe:job", { jobId: theirs.id, afterVersion: -1 })
        assert.strictEqual((badVersion["error"] as { _tag: string })._tag, "InvalidInput")
      }))

    it.scoped("a bad, missing or expired token gets connect_error unauthorized; a Bearer header authenticates too", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        for (const auth of [{}, { token: "not-a-jwt" }, { token: yield* token("old", [], -60) }]) {
          const refused = yield* Effect.flip(connect(base, { auth, transport: "websocket" }))
          assert.strictEqual(refused.message, "unauthorized")
        }
        const user = yield* token("hal")
        const socket = yield* Effect.acquireRelease(
          Effect.async<Socket, Error>((resume) => {
            const socket = io(base, {
              transports: ["polling"],
              extraHeaders: { authorization: `Bearer ${user}` },
              reconnection: false,
              forceNew: true
            })
            socket.once("connect", () => resume(Effect.succeed(socket)))
            socket.once("connect_error", (error) => resume(Effect.fail(error)))
          }),
          (socket) => Effect.sync(() => socket.close())
        )
        assert.isTrue(socket.connected)
      }))

    it.scoped("a socket is dropped when its token expires", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const { socket } = yield* connect(base, { auth: { token: yield* token("brief", [], 2) }, transport: "websocket" })
        const reason = yield* Effect.async<string>((resume) => {
          socket.once("disconnect", (why) => resume(Effect.succeed(why)))
        }).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual(reason, "io server disconnect")
      }))

    it.scoped("auth.cursor on connect replays the user's events after it, each once and in order, then goes live", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const base = yield* baseUrl
        const user = yield* token("cyd")
        const queue = uniqueQueue("sio")
        const first = yield* connect(base, { auth: { token: user }, transport: "websocket" })
        const ref = yield* jobs.enqueue({ name: "render", queue, owner: "cyd" })
        yield* eventually(Effect.sync(() => first.received.length), (n) => n >= 1)
        const cursor = first.received[0]!.data["cursor"]
        first.socket.close()
        // while it is away: claimed, started, two reports
        yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
        yield* workers.progress(ref.id, { percent: 30, force: true }, { workerId: `w-${queue}` })
        yield* workers.progress(ref.id, { percent: 60, force: true }, { workerId: `w-${queue}` })
        const again = yield* connect(base, { auth: { token: user, cursor }, transport: "polling" })
        yield* workers.complete(ref.id, { workerId: `w-${queue}`, result: 1 })
        const versions = () => again.received.filter((r) => r.data["jobId"] === ref.id).map((r) => r.data["version"])
        yield* eventually(Effect.sync(versions), (seen) => seen.includes(5))
        assert.deepStrictEqual(versions(), [2, 3, 4, 5])
        const bad = yield* Effect.flip(connect(base, { auth: { token: user, cursor: "nonsense" }, transport: "websocket" }))
        assert.match(bad.message, /^invalid cursor/)
      }))

    it.scoped("a socket on this process hears a completion made by another process on the database", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const { schema } = yield* JobWatchConfig
        const base = yield* baseUrl
        const queue = uniqueQueue("sio")
        const ref = yield* jobs.enqueue({ name: "render", queue, owner: "pia" })
        const { received, socket } = yield* connect(base, { auth: { token: yield* token("pia") }, transport: "websocket" })
        assert.deepInclude(yield* ask(socket, "subscribe:job", ref.id), { ok: true })
        const child = yield* runScript("completeChild.ts", [TestDb.databaseUrl(), schema, queue], 60_000)
        assert.strictEqual(child.code, 0, child.stderr)
        yield* eventually(Effect.sync(() => received.map((r) => r.name)), (names) =>
          names.includes("job:completed") && names.includes(`job:${ref.id}:completed`))
        const done = received.find((r) => r.name === "job:completed")!.data
        assert.deepStrictEqual(done["result"], { by: "child" })
      }))

    it.scoped("an admin's socket hears every user's jobs with auth.scope all, and only its own without", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const base = yield* baseUrl
        const admin = yield* token("root", ["admin"])
        const all = yield* connect(base, { auth: { token: admin, scope: "all" }, transport: "websocket" })
        const own = yield* connect(base, { auth: { token: admin }, transport: "websocket" })
        // a user's scope "all" is only its own jobs
        const user = yield* connect(base, { auth: { token: yield* token("nia"), scope: "all" }, transport: "websocket" })
        const ref = yield* jobs.enqueue({ name: "theirs", queue: uniqueQueue("sio"), owner: "zed" })
        yield* jobs.cancel(ref.id, { owner: "zed" })
        const canceled = (r: Received) => r.name === "job:canceled" && r.data["jobId"] === ref.id
        yield* eventually(Effect.sync(() => all.received.some(canceled)), (seen) => seen)
        // the admin's socket follows any job by id too
        assert.deepInclude(yield* ask(own.socket, "subscribe:job", ref.id), { ok: true, version: 2 })
        assert.isFalse(own.received.some(canceled))
        assert.isFalse(user.received.some(canceled))
      }))

    it.scoped("the browser client is served offline, and the HTTP API still answers beside Socket.IO", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const script = yield* Effect.promise(() => fetch(`${base}/socket.io/socket.io.min.js`))
        assert.strictEqual(script.status, 200)
        assert.match(script.headers.get("content-type") ?? "", /javascript/)
        assert.include(yield* Effect.promise(() => script.text()), "io")
        const health = yield* Effect.promise(() => fetch(`${base}/health`))
        assert.strictEqual(health.status, 200)
      }))
  })

  layer(socketServer({ maxStreamsPerUser: 1, corsOrigins: ["https://app.example.com"] }), {
    excludeTestServices: true,
    timeout: 90_000
  })((it) => {
    it.scoped("CORS for the configured origins (JOBWATCH_CORS_ORIGINS) on the polling handshake, none for others", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const handshake = (origin: string) =>
          Effect.promise(() => fetch(`${base}/socket.io/?EIO=4&transport=polling`, { headers: { origin } }))
        const allowed = yield* handshake("https://app.example.com")
        assert.strictEqual(allowed.status, 200)
        assert.strictEqual(allowed.headers.get("access-control-allow-origin"), "https://app.example.com")
        const other = yield* handshake("https://evil.example.com")
        assert.notStrictEqual(other.headers.get("access-control-allow-origin"), "https://evil.example.com")
      }))

    it.scoped("a socket holds one of its user's stream slots: over the limit, connect_error; a slot comes back", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const user = yield* token("kim")
        const first = yield* connect(base, { auth: { token: user }, transport: "websocket" })
        const refused = yield* Effect.flip(connect(base, { auth: { token: user }, transport: "websocket" }))
        assert.strictEqual(refused.message, "too many connections")
        // another user is not held back
        yield* connect(base, { auth: { token: yield* token("lou") }, transport: "websocket" })
        first.socket.close()
        yield* eventually(
          Effect.either(Effect.scoped(connect(base, { auth: { token: user }, transport: "websocket" }))),
          (attempt) => attempt._tag === "Right"
        )
      }))
  })

  // an authentication that waits for the test's word: a client can leave while its handshake is being checked
  const gate = Deferred.unsafeMake<void>(FiberId.none)
  const server = NodeHttp.createServer()
  const gated = SocketIo.layer(server).pipe(
    Layer.provide(Layer.succeed(SocketAuthentication, {
      authenticate: ({ token }) =>
        token === "slow"
          ? Effect.as(Deferred.await(gate), { user: new User({ sub: "gus", roles: [] }) })
          : Effect.succeed({ user: new User({ sub: "gus", roles: [] }) })
    })),
    Layer.provideMerge(JobWatch.layer),
    Layer.provideMerge(TestDb.layer({ reaper: false, rateLimit: null, maxStreamsPerUser: 1 })),
    Layer.provideMerge(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
  )
  layer(gated, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("a client that leaves while its handshake is checked gives its stream slot back", () =>
      Effect.gen(function*() {
        const base = yield* baseUrl
        const leaving = io(base, { auth: { token: "slow" }, transports: ["websocket"], reconnection: false, forceNew: true })
        // the engine's connection is open and its handshake waits at the gate; then the client goes
        yield* eventually(Effect.sync(() => leaving.io.engine?.readyState), (state) => state === "open")
        leaving.close()
        yield* Deferred.succeed(gate, undefined)
        // the one slot is free again: the next socket of the same user connects
        yield* eventually(
          Effect.either(Effect.scoped(connect(base, { auth: { token: "fast" }, transport: "websocket" }))),
          (attempt) => attempt._tag === "Right"
        )
      }))
  })
})
