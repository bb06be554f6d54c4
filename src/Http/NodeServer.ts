import { Context, Duration } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import type { JobWatchConfigShape } from "../Config.js"

/** The service's Node HTTP server and its open connections (the drain closes them). */
export interface NodeServerShape {
  readonly server: Http.Server
  readonly sockets: ReadonlySet<Net.Socket>
}

export class NodeServer extends Context.Tag("jobwatch/NodeServer")<NodeServer, NodeServerShape>() {}

/**
 * An `http.Server` that cuts slow clients and caps its connections: headers must arrive within `headersTimeout`
 * and the whole request (body included) within `bodyTimeout` (408 otherwise; a response, such as an event stream,
 * may last), and at most `maxConnections` are open at once (further ones are closed at once).
 */
export const makeNodeServer = (config: JobWatchConfigShape): NodeServerShape => {
  const bodyMs = Math.max(1, Math.round(Duration.toMillis(config.bodyTimeout)))
  const headersMs = Math.min(bodyMs, Math.max(1, Math.round(Duration.toMillis(config.headersTimeout))))
  const server = Http.createServer({
    headersTimeout: headersMs,
    requestTimeout: bodyMs,
    // how often Node checks those timeouts (30 s by default, which would double a 30 s bound)
    connectionsCheckingInterval: Math.min(5000, Math.max(100, Math.floor(headersMs / 10)))
  })
  server.maxConnections = config.maxConnections
  const sockets = new Set<Net.Socket>()
  server.on("connection", (socket: Net.Socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })
  return { server, sockets }
}

