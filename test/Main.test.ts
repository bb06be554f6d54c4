import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { databaseUrl, freshSchema } from "./support/TestDb.js"

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))

/** A TCP proxy on loopback to the test database, which the test can cut. */
const proxy = Effect.acquireRelease(
  Effect.promise(() => {
    const target = new URL(databaseUrl())
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((client) => {
      const upstream = Net.connect(Number(target.port || 5432), target.hostname)
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      client.pipe(upstream).pipe(client)
    })
    return new Promise<{ port: number; cut: () => void }>((resolve) =>
      server.listen(0, "127.0.0.1", () =>
        resolve({
          port: (server.address() as Net.AddressInfo).port,
          cut: () => {
            server.close()
            for (const socket of sockets) socket.destroy()
          }
        }))
    )
  }),
  ({ cut }) => Effect.sync(cut)
)

const dropSchema = (schema: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: databaseUrl() })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  })

describe("npm start (src/main.ts)", () => {
  it.live("exits non-zero when the LISTEN connection stays down past JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE", () =>
    Effect.gen(function*() {
      const { port, cut } = yield* proxy
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const url = new URL(databaseUrl())
      url.hostname = "127.0.0.1"
      url.port = String(port)
      const result = yield* Effect.async<{ code: number | null; output: string }>((resume) => {
        const child = spawn(process.execPath, ["--import", "tsx", main], {
          env: {
            ...process.env,
            DATABASE_URL: url.toString(),
            JOBWATCH_SCHEMA: schema,
            PORT: "0",
            JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE: "1 second",
            JOBWATCH_LISTENER_MAX_BACKOFF: "200 millis"
          },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let output = ""
        let cutDone = false
        const onData = (chunk: Buffer) => {
          output += chunk.toString()
          // up and serving: now take the database away
          if (!cutDone && output.includes("Listening on")) {
            cutDone = true
            cut()
          }
        }
        child.stdout.on("data", onData)
        child.stderr.on("data", onData)
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
        child.on("close", (code) => {
          clearTimeout(timer)
          resume(Effect.succeed({ code, output }))
        })
        return Effect.sync(() => child.kill("SIGKILL"))
      })
      assert.notStrictEqual(result.code, 0, result.output)
      assert.isNotNull(result.code, `killed by the test's timeout: ${result.output}`)
      assert.match(result.output, /LISTEN connection has been down/)
    }).pipe(Effect.scoped), { timeout: 90_000 })
})
