import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as FsSync from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { repoPath } from "./support/processes.js"
import * as Proxy from "./support/proxy.js"
import { startService, tempDir } from "./support/service.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"

describe("npm start (src/main.ts)", () => {
  it.live("exits non-zero when the LISTEN connection stays down past JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE", () =>
    Effect.gen(function*() {
      const proxy = yield* Proxy.make
      const dataDir = yield* tempDir
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const service = yield* startService({
        DATABASE_URL: proxy.url,
        JOBWATCH_SCHEMA: schema,
        PORT: "0",
        JOBWATCH_SHUTDOWN_ON_LISTENER_FAILURE: "1 second",
        JOBWATCH_LISTENER_MAX_BACKOFF: "200 millis",
        JOBWATCH_DATA_DIR: dataDir
      })
      // up and serving: now take the database away
      yield* service.waitFor(/Listening on/)
      yield* proxy.cut()
      const exited = yield* Deferred.await(service.exited).pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`no exit in 60 s: ${service.output()}`) })
      )
      assert.notStrictEqual(exited.code, 0, service.output())
      assert.isNotNull(exited.code, service.output())
      assert.match(service.output(), /LISTEN connection has been down/)
    }).pipe(Effect.scoped), { timeout: 90_000 })

  it.live("JOBWATCH_LOG_FORMAT=json: stdout is one JSON object per line, with the module of each service's lines", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const service = yield* startService({
        DATABASE_URL: databaseUrl(),
        JOBWATCH_SCHEMA: schema,
        JOBWATCH_LOG_FORMAT: "json",
        PORT: "0",
        HOST: "127.0.0.1",
        JOBWATCH_DATA_DIR: dataDir
      })
      yield* service.waitFor(/Listening on/)
      yield* service.waitFor(/this process is the reaper/)
      service.child.kill("SIGTERM")
      const exited = yield* Deferred.await(service.exited).pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(exited.code, 0, service.output())
      const lines = service.stdout().split("\n").filter((line) => line.trim() !== "")
      const entries = lines.map((line) => JSON.parse(line) as { message: unknown; logLevel: string; annotations: Record<string, unknown> })
      assert.isAtLeast(entries.length, 4)
      assert.isTrue(entries.every((e) => typeof e.logLevel === "string" && e.message !== undefined), service.stdout())
      const moduleOf = (text: string) =>
        entries.find((e) => String(e.message).includes(text))?.annotations["module"]
      assert.strictEqual(moduleOf("applied migrations"), "Migrations")
      assert.strictEqual(moduleOf("this process is the reaper"), "Reaper")
      assert.strictEqual(moduleOf("stopping: draining"), "HttpServer")
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
        execFileSync(process.execPath, ["--import", "tsx", repoPath("src/token.ts"), ...cmd], {
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
        const service = yield* startService({ PORT: "0", HOST: "127.0.0.1", ...env })
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
        const dataDir = yield* tempDir
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
        const dataDir = yield* tempDir
        const { code, output } = yield* runToExit({ DATABASE_URL: url.toString(), JOBWATCH_DATA_DIR: dataDir })
        assert.strictEqual(code, 1, output)
        const lines = output.trim().split("\n")
        assert.lengthOf(lines, 1, output)
        assert.strictEqual(lines[0], `jobwatch: cannot connect to the database: database "jobwatch_no_such_database" does not exist`)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
})
