import { Effect } from "effect"
import * as Net from "node:net"
import { databaseUrl } from "./TestDb.js"

/** A TCP proxy on loopback to the test database that a test can cut, restore and freeze. */
export interface TestProxy {
  readonly port: number
  /** The target's URL through the proxy (the suite's database URL, for `make`). */
  readonly url: string
  /** Connections made through the proxy so far. */
  readonly connections: () => number
  /** Closes every connection and refuses new ones (the database is gone). */
  readonly cut: () => Effect.Effect<void>
  /** Accepts connections again on the same port. */
  readonly restore: () => Effect.Effect<void>
  /**
   * Stops forwarding bytes on the connections open now, in both directions, without closing either side (as a
   * backend stopped with SIGSTOP); with `all`, connections made later stall too (the whole host froze).
   */
  readonly freeze: (options?: { readonly all?: boolean }) => void
  /** Forwards again everything held back. */
  readonly thaw: () => void
}

/** Forwards `from` to `to`, pausing `from` while `to` is full or the pair is frozen. */
const forward = (from: Net.Socket, to: Net.Socket, isFrozen: () => boolean) => {
  from.on("data", (chunk) => {
    if (!to.write(chunk)) from.pause()
  })
  to.on("drain", () => {
    if (!isFrozen()) from.resume()
  })
  from.on("end", () => to.end())
}

/** A proxy on loopback to `host:targetPort` (`url` is `urlFor` its port), closed when the scope closes. */
export const makeTo = (host: string, targetPort: number, urlFor: (port: number) => string) => Effect.acquireRelease(
  Effect.promise(() => {
    const pairs = new Set<{ readonly client: Net.Socket; readonly upstream: Net.Socket; frozen: boolean }>()
    let freezeNew = false
    let made = 0
    const onConnection = (client: Net.Socket) => {
      made++
      const upstream = Net.connect(targetPort, host)
      const pair = { client, upstream, frozen: freezeNew }
      pairs.add(pair)
      if (pair.frozen) {
        client.pause()
        upstream.pause()
      }
      for (const socket of [client, upstream]) {
        socket.on("close", () => {
          pairs.delete(pair)
          client.destroy()
          upstream.destroy()
        })
        socket.on("error", () => socket.destroy())
      }
      forward(client, upstream, () => pair.frozen)
      forward(upstream, client, () => pair.frozen)
    }
    let server = Net.createServer(onConnection)
    const listen = (port: number) =>
      new Promise<number>((resolve, reject) => {
        server.once("error", reject)
        server.listen(port, "127.0.0.1", () => resolve((server.address() as Net.AddressInfo).port))
      })
    return listen(0).then((port) => {
      const closeAll = () =>
        new Promise<void>((resolve) => {
          for (const { client, upstream } of pairs) {
            client.destroy()
            upstream.destroy()
          }
          pairs.clear()
          if (!server.listening) return resolve()
          server.close(() => resolve())
        })
      const proxy: TestProxy = {
        port,
        url: urlFor(port),
        connections: () => made,
        cut: () => Effect.promise(closeAll),
        restore: () =>
          Effect.promise(async () => {
            if (server.listening) return
            server = Net.createServer(onConnection)
            await listen(port)
          }),
        freeze: (options = {}) => {
          freezeNew = options.all === true
          for (const pair of pairs) {
            pair.frozen = true
            pair.client.pause()
            pair.upstream.pause()
          }
        },
        thaw: () => {
          freezeNew = false
          for (const pair of pairs) {
            pair.frozen = false
            pair.client.resume()
            pair.upstream.resume()
          }
        }
      }
      return { proxy, closeAll }
    })
  }),
  ({ closeAll }) => Effect.promise(closeAll)
).pipe(Effect.map(({ proxy }) => proxy))

/** A proxy to the suite's database, closed when the scope closes. */
export const make = Effect.suspend(() => {
  const target = new URL(databaseUrl())
  return makeTo(target.hostname, Number(target.port || 5432), (port) => {
    const url = new URL(databaseUrl())
    url.hostname = "127.0.0.1"
    url.port = String(port)
    return url.toString()
  })
})

/** Drops `schema` on a connection of its own, straight to the database (a pool through a proxy may be gone). */
export { dropSchema } from "./TestDb.js"
