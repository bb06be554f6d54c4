import { HttpServer } from "@effect/platform"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { jwtVerify } from "jose"
import { SqlClient } from "@effect/sql"
import { JobWatchConfig } from "../src/Config.js"
import { Workers } from "../src/Workers.js"
import { closedPort, uniqueQueue } from "./support/fixtures.js"
import { serverLayer, token as tokenFor } from "./support/http.js"
import { repoPath, runNode } from "./support/processes.js"
import { tempDir } from "./support/service.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"

// The built command, as a user runs it (`npx jobwatch …` runs this file): `npm ci` builds it (prepare), and so
// does `npm run build`.
const cli = repoPath("dist/cli.js")
const secret = "cli-test-secret-0123456789-abcdefghijklmnop"

const jobwatch = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) =>
  Effect.flatMap(tempDir, (dataDir) =>
    runNode(cli, args, { tsx: false, timeoutMs: 60_000, env: { JOBWATCH_DATA_DIR: dataDir, NO_COLOR: "1", ...env } }))

/** A fresh schema on the test database, dropped at the end. */
const onSchema = Effect.acquireRelease(Effect.sync(freshSchema), (schema) => dropSchema(schema))

describe("the jobwatch command (built)", () => {
  it("is built, executable, and named in package.json's bin", () => {
    const pkg = JSON.parse(Fs.readFileSync(repoPath("package.json"), "utf8")) as { bin: Record<string, string> }
    assert.strictEqual(pkg.bin["jobwatch"], "dist/cli.js")
    assert.isTrue(Fs.existsSync(cli), "dist/cli.js: run npm run build")
    assert.match(Fs.readFileSync(cli, "utf8").slice(0, 30), /^#!\/usr\/bin\/env node/)
    assert.isTrue((Fs.statSync(cli).mode & 0o111) !== 0)
  })

  it.scoped("--help names every command, and each command has its own; a command it does not know is exit 2", () =>
    Effect.gen(function*() {
      const help = yield* jobwatch(["--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      for (const command of ["serve", "migrate", "token", "purge", "amqp", "enqueue", "status", "list", "cancel", "wait", "tail", "worker"]) {
        assert.include(help.stdout, command)
      }
      assert.notInclude(help.stdout, "\u001b[", "no colours in a pipe")
      const commands = [["serve"], ["migrate"], ["token"], ["purge"], ["amqp", "init"], ["wait"], ["tail"], ["worker"]]
      const helps = yield* Effect.forEach(commands, (command) => jobwatch([...command, "--help"]), { concurrency: 4 })
      for (const [i, own] of helps.entries()) {
        assert.strictEqual(own.code, 0, `${commands[i]!.join(" ")} --help: ${own.stderr}`)
        assert.include(own.stdout, "USAGE")
      }
      const unknown = yield* jobwatch(["frobnicate"])
      assert.strictEqual(unknown.code, 2)
      assert.include(unknown.stdout + unknown.stderr, "Invalid subcommand")
    }), { timeout: 60_000 })

  it.scoped("token prints only a token the service accepts; a bad role or TTL is exit 2 with the reason", () =>
    Effect.gen(function*() {
      const env = { JOBWATCH_JWT_SECRET: secret }
      const minted = yield* jobwatch(["token", "--sub", "alice", "--role", "worker", "--ttl", "30d"], env)
      assert.strictEqual(minted.code, 0, minted.stderr)
      const lines = minted.stdout.trim().split("\n")
      assert.lengthOf(lines, 1, "the token alone")
      const { payload } = yield* Effect.promise(() =>
        jwtVerify(lines[0]!, new TextEncoder().encode(secret)))
      assert.deepStrictEqual([payload.sub, payload["roles"]], ["alice", ["worker"]])
      assert.approximately((payload.exp ?? 0) - (payload.iat ?? 0), 30 * 86400, 5)
      const badRole = yield* jobwatch(["token", "--sub", "alice", "--role", "boss"], env)
      assert.strictEqual(badRole.code, 2)
      assert.include(badRole.stdout + badRole.stderr, "worker, admin")
      const badTtl = yield* jobwatch(["token", "--sub", "alice", "--ttl", "forever"], env)
      assert.deepStrictEqual([badTtl.code, badTtl.stderr.trim()], [2, "jobwatch: --ttl must be a duration such as 15m, 1h or 7d"])
      const noSub = yield* jobwatch(["token"], env)
      assert.strictEqual(noSub.code, 2)
    }), { timeout: 60_000 })

  it.scoped("migrate applies the migrations once; purge removes old finished jobs; a database that does not answer is exit 1 in one line", () =>
    Effect.gen(function*() {
      const schema = yield* onSchema
      const env = { DATABASE_URL: databaseUrl(), JOBWATCH_SCHEMA: schema }
      const first = yield* jobwatch(["migrate"], env)
      assert.strictEqual(first.code, 0, first.stderr)
      const latest = Math.max(...Fs.readdirSync(repoPath("sql")).filter((f) => /^\d{4}_/.test(f)).map((f) => Number(f.slice(0, 4))))
      assert.match(first.stdout.trim(), new RegExp(`^applied migrations 1, 2, .*${latest}$`))
      const again = yield* jobwatch(["migrate"], env)
      assert.deepStrictEqual([again.code, again.stdout.trim()], [0, "the schema is up to date"])
      const purged = yield* jobwatch(["purge", "--older-than", "30d"], env)
      assert.deepStrictEqual([purged.code, purged.stdout.trim()], [0, "purged 0 finished jobs"])
      const badDuration = yield* jobwatch(["purge", "--older-than", "soon"], env)
      assert.strictEqual(badDuration.code, 2)
      assert.include(badDuration.stdout + badDuration.stderr, "--older-than must be a duration")
      const port = yield* closedPort
      const down = yield* jobwatch(["migrate"], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x`, JOBWATCH_SCHEMA: schema })
      assert.strictEqual(down.code, 1)
      assert.match(down.stderr, /^jobwatch: .*ECONNREFUSED.*\n$/)
    }), { timeout: 90_000 })

  it.scoped("amqp init declares the topology (idempotent); without JOBWATCH_AMQP_URL it says which variable, exit 1", () =>
    Effect.gen(function*() {
      const exchange = `cli.test.${process.pid}.${Date.now().toString(36)}`
      const env = { JOBWATCH_AMQP_URL: "amqp://guest:guest@127.0.0.1:5672", JOBWATCH_AMQP_EXCHANGE: exchange, JOBWATCH_AMQP_ERP_EXCHANGE: `${exchange}.erp` }
      for (let i = 0; i < 2; i++) {
        const declared = yield* jobwatch(["amqp", "init"], env)
        assert.strictEqual(declared.code, 0, declared.stderr)
        assert.strictEqual(declared.stdout.trim(), `declared ${exchange} (topic), ${exchange}.erp (fanout) bound to it with job.status.*`)
      }
      const unset = yield* jobwatch(["amqp", "init"], { JOBWATCH_AMQP_URL: "" })
      assert.strictEqual(unset.code, 1)
      assert.include(unset.stderr, "JOBWATCH_AMQP_URL")
    }), { timeout: 60_000 })

  it.scoped("serve runs the service until SIGTERM, then stops with exit 0", () =>
    Effect.gen(function*() {
      const schema = yield* onSchema
      const dataDir = yield* tempDir
      const exited = yield* Deferred.make<number | null>()
      let output = ""
      const child = spawn(process.execPath, [cli, "serve"], {
        env: { ...process.env, DATABASE_URL: databaseUrl(), JOBWATCH_SCHEMA: schema, PORT: "0", HOST: "127.0.0.1", JOBWATCH_DATA_DIR: dataDir },
        stdio: ["ignore", "pipe", "pipe"]
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
      const base = yield* Effect.async<string, Error>((resume) => {
        const check = setInterval(() => {
          const m = /Listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
          if (m !== null) {
            clearInterval(check)
            resume(Effect.succeed(m[1]!))
          }
        }, 20)
        const timer = setTimeout(() => {
          clearInterval(check)
          resume(Effect.fail(new Error(`not listening after 60 s: ${output}`)))
        }, 60_000)
        return Effect.sync(() => {
          clearInterval(check)
          clearTimeout(timer)
        })
      })
      const health = yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.status))
      assert.strictEqual(health, 200)
      child.kill("SIGTERM")
      const code = yield* Deferred.await(exited).pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(code, 0, output)
    }), { timeout: 90_000 })
})

describe("the jobwatch command against a running service", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 90_000 })((it) => {
    const base = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

    it.scoped("enqueue, status, list and cancel, with --url and --token or JOBWATCH_URL and JOBWATCH_TOKEN", () =>
      Effect.gen(function*() {
        const url = yield* base
        const alice = yield* tokenFor("alice")
        const queue = uniqueQueue("cli")
        const env = { JOBWATCH_URL: url, JOBWATCH_TOKEN: alice }
        const enqueued = yield* jobwatch(["enqueue", "render", "--queue", queue, "--payload", "{\"w\":640}", "--priority", "5"], env)
        assert.strictEqual(enqueued.code, 0, enqueued.stderr)
        const id = enqueued.stdout.trim()
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/)
        // the command has no span of its own: it sends no traceparent, and the job keeps no trace context
        const { schema } = yield* JobWatchConfig
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql.unsafe<{ traceparent: string | null }>(`SELECT traceparent FROM "${schema}".jobs WHERE id = $1`, [id])
        assert.isNull(row?.traceparent)
        const status = yield* jobwatch(["status", id, "--json", "--url", url, "--token", alice])
        assert.strictEqual(status.code, 0, status.stderr)
        const job = JSON.parse(status.stdout) as { status: string; payload: unknown; priority: number; queue: string }
        assert.deepStrictEqual([job.status, job.payload, job.priority, job.queue], ["pending", { w: 640 }, 5, queue])
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-cli-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        Fs.writeFileSync(`${dir}/payload.json`, JSON.stringify({ from: "file" }))
        const fromFile = yield* jobwatch(["enqueue", "render", "--queue", queue, "--payload", `@${dir}/payload.json`, "--json"], env)
        assert.strictEqual(fromFile.code, 0, fromFile.stderr)
        assert.strictEqual((JSON.parse(fromFile.stdout) as { status: string }).status, "pending")
        const listed = yield* jobwatch(["list", "--queue", queue], env)
        assert.strictEqual(listed.code, 0, listed.stderr)
        const lines = listed.stdout.trim().split("\n")
        assert.lengthOf(lines, 2)
        assert.include(lines[1], id, "newest first")
        assert.include(lines[1], "pending")
        const canceled = yield* jobwatch(["cancel", id], env)
        assert.strictEqual(canceled.code, 0, canceled.stderr)
        assert.include(canceled.stdout, "canceled")
        // bad input: exit 2 with the reason; a refused token: exit 1 in one line
        const badJson = yield* jobwatch(["enqueue", "render", "--payload", "{nope"], env)
        assert.deepStrictEqual([badJson.code, badJson.stderr.trim()], [2, "jobwatch: --payload is not JSON"])
        const badId = yield* jobwatch(["status", "42"], env)
        assert.strictEqual(badId.code, 2)
        const badCancel = yield* jobwatch(["cancel", "not-an-id"], env)
        assert.deepStrictEqual([badCancel.code, badCancel.stderr.trim()], [2, "jobwatch: \"not-an-id\" is not a job id (a UUID)"])
        const badStatus = yield* jobwatch(["list", "--status", "bogus"], env)
        assert.strictEqual(badStatus.code, 2)
        const refused = yield* jobwatch(["status", id], { ...env, JOBWATCH_TOKEN: "not-a-token" })
        assert.strictEqual(refused.code, 1)
        assert.match(refused.stderr, /^jobwatch: .+\n$/)
        const other = yield* jobwatch(["status", id], { ...env, JOBWATCH_TOKEN: yield* tokenFor("bob") })
        assert.strictEqual(other.code, 1, "another user's job is not found")
      }))

    it.scoped("enqueue --wait prints how the job ended: exit 0 when it completed, 1 when it failed", () =>
      Effect.gen(function*() {
        const url = yield* base
        const env = { JOBWATCH_URL: url, JOBWATCH_TOKEN: yield* tokenFor("carol") }
        const workers = yield* Workers
        for (const outcome of ["completed", "failed"] as const) {
          const queue = uniqueQueue("cli-wait")
          const waiting = yield* jobwatch(["enqueue", "render", "--queue", queue, "--wait"], env).pipe(Effect.fork)
          const [claimed] = yield* workers.claim("cli-worker", { queues: [queue], wait: "20 seconds", start: true })
          if (outcome === "completed") yield* workers.complete(claimed!.id, { workerId: "cli-worker", result: { ok: true } })
          else yield* workers.fail(claimed!.id, { workerId: "cli-worker", error: "boom", retryable: false })
          const ran = yield* Fiber.join(waiting)
          assert.strictEqual(ran.code, outcome === "completed" ? 0 : 1, ran.stderr)
          assert.include(ran.stdout, claimed!.id)
          assert.include(ran.stdout, outcome)
        }
      }))
  })
})
