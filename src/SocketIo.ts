import { Duration, Effect, Exit, FiberId, Layer, Option, Runtime, Schema, Scope } from "effect"
import { Server as Engine } from "engine.io"
import { readFileSync } from "node:fs"
import type * as Http from "node:http"
import type * as Net from "node:net"
import { createRequire } from "node:module"
import * as Path from "node:path"
import type { Duplex } from "node:stream"
import type { Socket } from "socket.io"
import { Server as IoServer } from "socket.io"
import { SocketAuthentication } from "./Auth/Api.js"
import { JobWatchConfig } from "./Config.js"
import type { User } from "./Domain/Auth.js"
import type { JobId } from "./Domain/JobId.js"
import type { JobEvent } from "./Domain/JobEvent.js"
import { JobEvent as JobEventSchema } from "./Domain/JobEvent.js"
import { JobIdFromString, Version } from "./Domain/Requests.js"
import { Limits } from "./Http/Limits.js"
import { NodeServer } from "./Http/NodeServer.js"
import { Shutdown } from "./Http/Shutdown.js"
import { decodeField } from "./internal/invalid.js"
import { Jobs } from "./Jobs.js"
import { CompletionWatcher } from "./CompletionWatcher.js"
import { EventStream, streamCursor } from "./Streams/EventStream.js"
import type { PositionedItem, Sink } from "./Streams/Tail.js"

/** Where Socket.IO answers on the service's port (requests and websocket upgrades). */
const prefix = "/socket.io/"
/** The browser client, served offline from the installed `socket.io-client`. */
const clientPath = `${prefix}socket.io.min.js`
/** What a socket may have queued unsent before the stream tail waits for it (then it reads the log). */
const highWater = 1000
/** Jobs one socket may follow with `subscribe:job` at once. */
const maxSubscriptions = 1000

const encodeEvent = Schema.encodeSync(JobEventSchema)
const envelopes = new WeakMap<JobEvent, unknown>()
/** An event's envelope as JSON-ready data, encoded once however many sockets send it. */
const envelopeOf = (event: JobEvent) => {
  let envelope = envelopes.get(event)
  if (envelope === undefined) {
    envelope = encodeEvent(event)
    envelopes.set(event, envelope)
  }
  return envelope
}

/**
 * The Socket.IO name of an event, after `job:` (user room) or `job:<id>:` (a subscribed job): `progress`,
 * `completed`, `failed`, `canceled`, and `status` for every other transition (and a cancel request).
 */
export const socketEventKind = (event: JobEvent) => {
  switch (event.type) {
    case "job.progress":
      return "progress"
    case "job.completed":
      return "completed"
    case "job.failed":
      return "failed"
    case "job.canceled":
      return "canceled"
    default:
      return "status"
  }
}

const jobIdOf = decodeField(JobIdFromString, "jobId")
const afterVersionOf = decodeField(Version, "afterVersion")

/** A `subscribe:job`/`unsubscribe:job` argument: a job id, or an object with `jobId` (and `afterVersion`). */
const jobArgument = (arg: unknown): Record<string, unknown> =>
  typeof arg === "object" && arg !== null ? (arg as Record<string, unknown>) : { jobId: arg }

/** An acknowledgement's refusal: the error's tag and message, as the HTTP API's bodies have them. */
const refusal = (error: { readonly _tag: string; readonly message: string }) => ({
  ok: false as const,
  error: { _tag: error._tag, message: error.message }
})

/** What a socket has queued unsent: engine.io's write buffer (its type keeps it private). */
const queued = (socket: Socket): number => {
  const buffer: unknown = Reflect.get(socket.conn, "writeBuffer")
  return Array.isArray(buffer) ? buffer.length : 0
}

/** What a socket holds: its user, the scope of its slot, its job subscriptions. */
interface SocketState {
  readonly user: User
  readonly owner: string | undefined
  readonly scope: Scope.CloseableScope
  readonly attach: (sink: Sink) => Effect.Effect<never>
  readonly expiresAt: number | undefined
  readonly subscriptions: Map<JobId, () => void>
}

const stateOf = (socket: Socket) => socket.data as { state?: SocketState }

const clientFile = () => {
  const require = createRequire(import.meta.url)
  const dir = Path.dirname(require.resolve("socket.io-client/package.json"))
  return readFileSync(Path.join(dir, "dist", "socket.io.min.js"))
}

/**
 * Socket.IO on the service's own port, at `/socket.io/` (websocket and polling). Requests and upgrades under that
 * path go to the engine before the Effect router sees them; everything else to Effect. Each socket:
 * - is authenticated by `SocketAuthentication` (`auth.token`, or an `Authorization: Bearer` header); a refusal is
 *   the client's `connect_error` with message `unauthorized`; it is dropped when its credentials expire;
 * - holds one of its user's stream slots (`JOBWATCH_MAX_STREAMS_PER_USER`) while connected;
 * - joins `user:<sub>` and gets its user's events (an admin's with `auth: { scope: "all" }`: every job's) as
 *   `job:progress`, `job:completed`, `job:failed`, `job:canceled` and `job:status`, each the event envelope with
 *   its `cursor`; `auth: { cursor }` replays the events after a cursor first, with no gap and no repeat;
 * - follows jobs with `subscribe:job` (an id, or `{ jobId, afterVersion }`: the events after that version first)
 *   and `unsubscribe:job`, each acknowledged, as `job:<id>:<kind>`.
 * Events come from the process's one stream tail and the notification path: any process on the database serves
 * its own sockets, with no adapter. The server drains them when it stops, before the HTTP server closes.
 */
export const SocketIoLive = Layer.scopedDiscard(Effect.gen(function*() {
  const node = yield* NodeServer
  const config = yield* JobWatchConfig
  const auth = yield* SocketAuthentication
  const streams = yield* EventStream
  const jobs = yield* Jobs
  const watcher = yield* CompletionWatcher
  const limits = yield* Limits
  const shutdown = yield* Effect.serviceOption(Shutdown)
  const runtime = yield* Effect.runtime<never>()
  const run = Runtime.runFork(runtime)

  const origins = config.corsOrigins
  const engine = new Engine({
    ...(origins.length === 0 ? {} : { cors: { origin: origins.includes("*") ? true : [...origins], credentials: false } }),
    maxHttpBufferSize: 16 * 1024,
    pingInterval: 25_000,
    pingTimeout: 20_000
  })
  const io = new IoServer({ serveClient: false })
  io.bind(engine)
  const client = clientFile()

  // Socket.IO's requests and upgrades never reach the Effect router (it would answer them 404 on the same socket)
  const server = node.server
  const emit = server.emit
  server.emit = function(this: Http.Server, event: string, ...args: Array<unknown>) {
    if (event === "request" || event === "upgrade") {
      const request = args[0] as Http.IncomingMessage
      if (request.url !== undefined && request.url.startsWith(prefix)) {
        if (event === "upgrade") {
          engine.handleUpgrade(request, args[1] as Duplex, args[2] as Buffer)
        } else if (request.url.split("?")[0] === clientPath) {
          const response = args[1] as Http.ServerResponse
          response.writeHead(200, { "content-type": "application/javascript", "cache-control": "public, max-age=3600" })
          response.end(client)
        } else {
          engine.handleRequest(request, args[1] as Http.ServerResponse)
        }
        return true
      }
    }
    return emit.apply(this, [event, ...args] as Parameters<typeof emit>)
  } as typeof server.emit

  // Node emits "upgrade" only to a server with an upgrade listener (else the request goes out as a "request"): one
  // of its own, which ends upgrades to other paths when nothing else (the Effect server) listens for them
  const onUpgrade = (_request: Http.IncomingMessage, socket: Duplex) => {
    if (server.listenerCount("upgrade") === 1) socket.destroy()
  }
  server.on("upgrade", onUpgrade)
  yield* Effect.addFinalizer(() => Effect.sync(() => void server.off("upgrade", onUpgrade)))

  /** Authenticates the handshake, holds a slot and prepares the user's stream; refuses with the client's message. */
  const admit = (socket: Socket) =>
    Effect.gen(function*() {
      const handshake = socket.handshake
      const offered = (handshake.auth ?? {}) as Record<string, unknown>
      const token = typeof offered["token"] === "string" ? offered["token"] : undefined
      const authorization = handshake.headers["authorization"]
      const { expiresAt, user } = yield* auth.authenticate({ token, authorization }).pipe(
        Effect.mapError(() => new Error("unauthorized"))
      )
      const all = offered["scope"] === "all" && user.isAdmin
      const owner = all ? undefined : user.sub
      const cursor = typeof offered["cursor"] === "string" ? offered["cursor"] : undefined
      const attach = yield* streams.attachUserEvents({ owner }, cursor).pipe(
        Effect.mapError((error) => new Error(`invalid cursor: ${error.message}`))
      )
      const scope = yield* Scope.make()
      const held = yield* Effect.exit(Scope.extend(limits.hold(user, "socket_io"), scope))
      if (Exit.isFailure(held)) {
        yield* Scope.close(scope, Exit.void)
        return yield* Effect.fail(new Error("too many connections"))
      }
      // a client gone during the handshake never reaches "connection" (Socket.IO drops it): its slot goes back here,
      // at once when it left while this ran, else when its connection closes
      if (socket.conn.readyState !== "open") {
        yield* Scope.close(scope, Exit.void)
        return yield* Effect.fail(new Error("the client left"))
      }
      socket.conn.once("close", () => run(Scope.close(scope, Exit.void)))
      const state: SocketState = { user, owner, scope, attach, expiresAt, subscriptions: new Map() }
      stateOf(socket).state = state
    })

  io.use((socket, next) => {
    run(admit(socket)).addObserver((exit) => {
      if (Exit.isSuccess(exit)) return next()
      const failure = exit.cause._tag === "Fail" ? exit.cause.error : new Error("unavailable")
      next(failure)
    })
  })

  /** Writes a user's events to its socket, in order; waits while the socket's buffer is full. */
  const sinkOf = (socket: Socket): Sink => ({
    write: (items: ReadonlyArray<PositionedItem>) => {
      for (const item of items) {
        socket.emit(`job:${socketEventKind(item.event)}`, {
          ...(envelopeOf(item.event) as object),
          cursor: streamCursor(item.position)
        })
      }
      return queued(socket) < highWater
    },
    writable: Effect.async<void>((resume) => {
      if (socket.disconnected || queued(socket) < highWater) return resume(Effect.void)
      const ready = () => {
        socket.conn.off("drain", ready)
        socket.conn.off("close", ready)
        resume(Effect.void)
      }
      socket.conn.on("drain", ready)
      socket.conn.on("close", ready)
      return Effect.sync(() => {
        socket.conn.off("drain", ready)
        socket.conn.off("close", ready)
      })
    })
  })

  const subscribe = (socket: Socket, state: SocketState, arg: unknown) =>
    Effect.gen(function*() {
      const raw = jobArgument(arg)
      const id = yield* jobIdOf(raw["jobId"])
      const after = raw["afterVersion"] === undefined ? undefined : yield* afterVersionOf(raw["afterVersion"])
      const status = yield* jobs.status(id, { owner: state.user.ownerScope })
      if (!state.subscriptions.has(id) && state.subscriptions.size >= maxSubscriptions) {
        return refusal({ _tag: "TooManySubscriptions", message: `a socket follows at most ${maxSubscriptions} jobs` })
      }
      state.subscriptions.get(id)?.()
      const unregister = watcher.follow(id, after ?? status.version, {
        onEvents: (events) => {
          for (const event of events) socket.emit(`job:${id}:${socketEventKind(event)}`, envelopeOf(event))
        },
        onGone: () => {
          state.subscriptions.get(id)?.()
          state.subscriptions.delete(id)
        }
      })
      state.subscriptions.set(id, unregister)
      socket.join(`job:${id}`)
      return { ok: true as const, version: status.version }
    }).pipe(Effect.catchTags({
      InvalidInput: (error) => Effect.succeed(refusal(error)),
      JobNotFound: (error) => Effect.succeed(refusal(error))
    }))

  const unsubscribe = (socket: Socket, state: SocketState, arg: unknown) =>
    Effect.gen(function*() {
      const raw = jobArgument(arg)
      const id = yield* jobIdOf(raw["jobId"])
      state.subscriptions.get(id)?.()
      state.subscriptions.delete(id)
      socket.leave(`job:${id}`)
      return { ok: true as const }
    }).pipe(Effect.catchTag("InvalidInput", (error) => Effect.succeed(refusal(error))))

  /** Answers an acknowledged client event with `answer`'s result (a defect answers `Unavailable`). */
  const acknowledge = (ack: unknown, answer: Effect.Effect<object>) => {
    run(answer).addObserver((exit) => {
      if (typeof ack !== "function") return
      ack(Exit.isSuccess(exit) ? exit.value : refusal({ _tag: "Unavailable", message: "try again" }))
    })
  }

  io.on("connection", (socket) => {
    const state = stateOf(socket).state
    if (state === undefined) return void socket.disconnect(true)
    void socket.join(`user:${state.user.sub}`)
    const fiber = run(Scope.extend(state.attach(sinkOf(socket)), state.scope))
    const expiry = state.expiresAt === undefined
      ? undefined
      : setTimeout(() => socket.disconnect(true), Math.max(0, state.expiresAt - Date.now()))
    socket.on("subscribe:job", (arg: unknown, ack: unknown) => acknowledge(ack, subscribe(socket, state, arg)))
    socket.on("unsubscribe:job", (arg: unknown, ack: unknown) => acknowledge(ack, unsubscribe(socket, state, arg)))
    socket.once("disconnect", () => {
      if (expiry !== undefined) clearTimeout(expiry)
      for (const unregister of state.subscriptions.values()) unregister()
      state.subscriptions.clear()
      fiber.unsafeInterruptAsFork(FiberId.none)
      run(Scope.close(state.scope, Exit.void))
    })
  })

  const close = () =>
    Effect.async<void>((resume) => {
      io.close(() => resume(Effect.void))
    }).pipe(Effect.timeoutOption(Duration.seconds(5)), Effect.asVoid)
  // the server drains: sockets are closed then, as event streams end (clients reconnect elsewhere with a cursor)
  if (Option.isSome(shutdown)) {
    const stop = shutdown.value.onDrain(() => void io.disconnectSockets(true))
    yield* Effect.addFinalizer(() => Effect.sync(stop))
  }
  yield* Effect.addFinalizer(() =>
    Effect.zipRight(close(), Effect.sync(() => {
      server.emit = emit
    }))
  )
}))

/**
 * Socket.IO for a host app, on its own `http.Server` (the one it serves with `NodeHttpServer.layer(() => server,
 * ...)`), beside `HttpRoutes` and `RpcRoutes`: give the layer below that server's layer (so that it is released
 * first), the jobwatch services, and a `SocketAuthentication` layer (the host's own, or `Auth.layerJwt`).
 */
export const layer = (server: Http.Server) =>
  SocketIoLive.pipe(Layer.provide([Layer.succeed(NodeServer, { server, sockets: new Set<Net.Socket>() }), Limits.Default]))
