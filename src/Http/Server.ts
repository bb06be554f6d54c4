import { HttpLayerRouter, HttpServer, HttpServerError } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import * as Net from "node:net"
import * as Auth from "../Auth.js"
import { JobWatchConfig } from "../Config.js"
import { RoutesLive, routerConfig } from "../Http.js"
import { requestLogger } from "./guards.js"
import { Limits } from "./Limits.js"
import type { NodeServerShape } from "./NodeServer.js"
import { makeNodeServer, NodeServer } from "./NodeServer.js"
import { SocketIoLive } from "../SocketIo.js"
import { Shutdown } from "./Shutdown.js"

/** The Node HTTP server (`makeNodeServer`) on the configured host and port, with the platform's services. */
export const NodeServerLive = Layer.unwrapEffect(Effect.gen(function*() {
  const config = yield* JobWatchConfig
  const node = makeNodeServer(config)
  return Layer.mergeAll(
    Layer.scoped(HttpServer.HttpServer, NodeHttpServer.make(() => node.server, { port: config.port, host: config.host })),
    NodeHttpServer.layerContext,
    Layer.succeed(NodeServer, node)
  )
}))

/**
 * What the server does when the process starts to stop, before anything else closes: it stops accepting
 * connections and starts draining (long-polls answer the current state, event streams end, responses close
 * their connections), closes connections as they fall idle, and, when some are still open with the shutdown
 * timeout's reserve for the rest of the shutdown reached (a slow client, a held RPC), closes them too.
 */
export const drain = (node: NodeServerShape, shutdown: Shutdown, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const timeoutMs = Duration.toMillis(timeout)
    // what the services and the database get to stop after the connections are gone
    const reserveMs = Math.min(1500, timeoutMs / 2)
    const deadline = Date.now() + timeoutMs - reserveMs
    yield* Effect.logInfo(
      `stopping: draining ${node.sockets.size} open ${node.sockets.size === 1 ? "connection" : "connections"} ` +
        `(shutdown timeout ${Duration.format(timeout)})`
    )
    yield* shutdown.begin
    yield* Effect.sync(() => {
      node.server.close()
      node.server.closeIdleConnections()
    })
    while (node.sockets.size > 0 && Date.now() < deadline) {
      yield* Effect.sleep(Duration.millis(20))
      node.server.closeIdleConnections()
    }
    if (node.sockets.size > 0) {
      yield* Effect.logWarning(`closing ${node.sockets.size} connections still open at the shutdown deadline`)
      yield* Effect.sync(() => {
        node.server.closeAllConnections()
        for (const socket of node.sockets) socket.destroy()
      })
    }
  })

const DrainLive = Layer.scopedDiscard(Effect.gen(function*() {
  const node = yield* NodeServer
  const shutdown = yield* Shutdown
  const config = yield* JobWatchConfig
  yield* Effect.addFinalizer(() => Effect.annotateLogs(drain(node, shutdown, config.shutdownTimeout), "module", "HttpServer"))
}))

export { makeNodeServer, NodeServer, type NodeServerShape } from "./NodeServer.js"

/**
 * The service: routes with JWT authentication, Socket.IO (`SocketIoLive`), served on the configured host and port, one debug line per
 * request (`requestLogger`), drained on shutdown (`drain`, released before the routes and the services).
 */
export const ServerLive = DrainLive.pipe(
  Layer.provideMerge(HttpLayerRouter.serve(RoutesLive, { routerConfig, disableLogger: true, middleware: requestLogger })),
  // released before the HTTP server, or its close waits for the websockets
  Layer.provideMerge(SocketIoLive.pipe(Layer.provide(Limits.Default))),
  Layer.provide(Auth.layerJwt),
  Layer.provideMerge(NodeServerLive),
  Layer.provideMerge(Shutdown.Default)
)

/**
 * Fails with the `ServeError` that listening would give (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`) when `host:port`
 * cannot be bound, before anything slow (the embedded PostgreSQL) starts. Port 0 always can.
 */
export const ensurePortFree = (host: string, port: number) =>
  port === 0 ? Effect.void : Effect.async<void, HttpServerError.ServeError>((resume) => {
    const probe = Net.createServer()
    probe.once("error", (cause) => resume(Effect.fail(new HttpServerError.ServeError({ cause }))))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resume(Effect.void)))
  })
