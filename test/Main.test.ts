import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import * as FsSync from "node:fs"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { execFileSync } from "node:child_process"
import pg from "pg"
import { startService as startMain, tempDir as serviceDir } from "./support/service.js"
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

/** A fresh directory, removed at the end. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "jobwatch-main-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

/** A running `npm start`: its output so far, and a way to wait for a line. Killed (SIGTERM, then SIGKILL) at the end. */
const startService = (env: Record<string, string | undefined>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", "tsx", main], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const watchers = new Set<() => void>()
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        watchers.forEach((w) => w())
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve))
      /** Waits (up to 90 s) until the output matches `pattern`; answers the match. */
      const waitFor = (pattern: RegExp) =>
        Effect.async<RegExpMatchArray, Error>((resume) => {
          const check = () => {
            const m = output.match(pattern)
            if (m !== null) {
              watchers.delete(check)
              clearTimeout(timer)
              resume(Effect.succeed(m))
            }
          }
          const timer = setTimeout(() => {
            watchers.delete(check)
            resume(Effect.fail(new Error(`no ${pattern} in 90 s; output: ${output}`)))
          }, 90_000)
          watchers.add(check)
          check()
          return Effect.sync(() => {
            watchers.delete(check)
            clearTimeout(timer)
          })
        })
      return { child, waitFor, exited, output: () => output }
    }),
    ({ child, exited }) =>
      Effect.promise(async () => {
        if (child.exitCode !== null) return
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
        await exited
        clearTimeout(timer)
      })
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
      const dataDir = yield* tempDir
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
            JOBWATCH_LISTENER_MAX_BACKOFF: "200 millis",
            JOBWATCH_DATA_DIR: dataDir
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

  it.live("black box: on the embedded database, a user enqueues, a worker runs the job over HTTP, the long-poll answers it", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const service = yield* startService({ DATABASE_URL: "", JOBWATCH_DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" })
      const admin = (yield* service.waitFor(/Admin token \(24 h\):\s+(\S+)/))[1]!
      const worker = (yield* service.waitFor(/Worker token \(24 h\):\s+(\S+)/))[1]!
      const base = (yield* service.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
      // a user's token from the CLI, signed with the secret the service generated
      const token = (cmd: ReadonlyArray<string>) =>
        execFileSync(process.execPath, ["--import", "tsx", fileURLToPath(new URL("../src/token.ts", import.meta.url)), ...cmd], {
          env: { ...process.env, JOBWATCH_DATA_DIR: dataDir },
          encoding: "utf8"
        }).trim()
      // minted before any request: a CLI run blocks this process long enough (under load) for the server to close an
      // idle keep-alive connection that fetch would then reuse
      const alice = token(["--sub", "alice", "--ttl", "10m"])
      const bob = token(["--sub", "bob"])
      const call = (method: string, path: string, bearer: string, body?: unknown, headers: Record<string, string> = {}) =>
        Effect.promise(async () => {
          const response = await fetch(`${base}${path}`, {
            method,
            headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", ...headers },
            ...(body === undefined ? {} : { body: JSON.stringify(body) })
          })
          return { status: response.status, headers: response.headers, body: await response.json() as any }
        })
      const health = yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.status))
      assert.strictEqual(health, 200)
      assert.strictEqual((yield* call("GET", "/v1/jobs", "")).status, 401)
      const created = yield* call("POST", "/v1/jobs", alice, { name: "render", queue: "images", payload: { w: 640 } })
      assert.strictEqual(created.status, 201)
      const id = created.body.id as string
      const poll = yield* Effect.fork(call("GET", `/v1/jobs/${id}`, alice, undefined, { prefer: "wait=30" }))
      const claimed = yield* call("POST", "/v1/workers/worker:box-1/claim", worker, { queues: ["images"], waitSeconds: 5 })
      assert.deepStrictEqual(claimed.body.jobs.map((j: { id: string }) => j.id), [id])
      assert.strictEqual((yield* call("PATCH", `/v1/jobs/${id}`, worker, { workerId: "worker:box-1", status: "running" })).status, 200)
      const progress = yield* call("POST", `/v1/jobs/${id}/progress`, worker, { workerId: "worker:box-1", percent: 50, step: "resize" })
      assert.isTrue(progress.body.accepted)
      const done = yield* call("PATCH", `/v1/jobs/${id}`, worker, { workerId: "worker:box-1", status: "completed", result: { url: "/a.png" } })
      assert.strictEqual(done.status, 200)
      const answer = yield* poll.await.pipe(Effect.flatten)
      assert.strictEqual(answer.status, 200)
      assert.strictEqual(answer.headers.get("preference-applied"), "wait=30")
      assert.deepInclude(answer.body, { id, status: "completed", owner: "alice", result: { url: "/a.png" } })
      // the admin sees alice's job; another user does not
      assert.strictEqual((yield* call("GET", `/v1/jobs/${id}`, admin)).status, 200)
      assert.strictEqual((yield* call("GET", `/v1/jobs/${id}`, bob)).status, 404)
    }).pipe(Effect.scoped), { timeout: 180_000 })

  describe.concurrent("errors on start are one line and exit 1, not an Effect stack", () => {
    /** Runs the service until it exits (60 s at most); answers its code and output. */
    const runToExit = (env: Record<string, string | undefined>) =>
      Effect.gen(function*() {
        const service = yield* startMain({ PORT: "0", HOST: "127.0.0.1", ...env })
        const exited = yield* Deferred.await(service.exited).pipe(Effect.timeout("60 seconds"))
        return { code: exited.code, output: service.output() }
      })

    it.live("the port in use: EADDRINUSE host:port, before the embedded database starts", () =>
      Effect.gen(function*() {
        const taken = yield* Effect.acquireRelease(
          Effect.async<Net.Server>((resume) => {
            const server = Net.createServer()
            server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
        )
        const port = (taken.address() as Net.AddressInfo).port
        const dataDir = yield* serviceDir
        const { code, output } = yield* runToExit({ DATABASE_URL: "", JOBWATCH_DATA_DIR: dataDir, PORT: String(port) })
        assert.strictEqual(code, 1, output)
        const lines = output.trim().split("\n")
        assert.lengthOf(lines, 1, output)
        assert.match(lines[0]!, new RegExp(`^jobwatch: EADDRINUSE 127\\.0\\.0\\.1:${port}: `))
        // the embedded database was never initialised
        assert.isFalse(FsSync.existsSync(Path.join(dataDir, "postgres")), output)
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a database that does not exist: its name, in PostgreSQL's words", () =>
      Effect.gen(function*() {
        const url = new URL(databaseUrl())
        url.pathname = "/jobwatch_no_such_database"
        const dataDir = yield* serviceDir
        const { code, output } = yield* runToExit({ DATABASE_URL: url.toString(), JOBWATCH_DATA_DIR: dataDir })
        assert.strictEqual(code, 1, output)
        const lines = output.trim().split("\n")
        assert.lengthOf(lines, 1, output)
        assert.strictEqual(lines[0], `jobwatch: cannot connect to the database: database "jobwatch_no_such_database" does not exist`)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
})
