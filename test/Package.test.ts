import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as TestDb from "./support/TestDb.js"

// The package as a host application gets it: built (`npm run build`), packed (`npm pack`), installed into a fresh
// project that has its own `effect` and `@effect/*` (from the npm cache), and imported by plain `node`, no tsx.

const root = fileURLToPath(new URL("..", import.meta.url))

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}) =>
  Effect.async<string, Error>((resume) => {
    const child = execFile(
      command,
      args,
      { cwd, env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resume(
          error === null
            ? Effect.succeed(stdout)
            : Effect.fail(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`))
        )
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const pkg: {
  readonly name: string
  readonly version: string
  readonly peerDependencies: Readonly<Record<string, string>>
  readonly peerDependenciesMeta: Readonly<Record<string, { readonly optional?: boolean }>>
  readonly devDependencies: Readonly<Record<string, string>>
} = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))

/** The host's program: jobwatch on its own PgClient, a job enqueued, run by `Worker.run`, awaited. */
const hostProgram = `
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { CompletionWatcher, JobWatch, JobWatchConfig, Jobs, Worker } from "jobwatch"
import * as Client from "jobwatch/client"
import * as Domain from "jobwatch/domain"

const database = PgClient.layer({ url: Redacted.make(process.env.HOST_DATABASE_URL), maxConnections: 4 })
const config = JobWatchConfig.layer({ schema: process.env.HOST_SCHEMA, reaper: false, webhooks: false })
const program = Effect.gen(function*() {
  const jobs = yield* Jobs
  const watcher = yield* CompletionWatcher
  const ref = yield* jobs.enqueue({ name: "double", queue: "packed", payload: { n: 21 } })
  yield* Worker.run({ queues: ["packed"], handler: (job) => Effect.succeed({ doubled: job.payload.n * 2 }) })
  const outcome = yield* watcher.waitFor(ref.id).pipe(Effect.timeout("20 seconds"))
  return {
    status: outcome.status,
    result: outcome.result,
    idIsDomain: Domain.JobId.make(ref.id) === ref.id,
    client: typeof Client.httpWorkerBackend,
    clientWorker: typeof Client.Worker.run
  }
})
const answer = await Effect.runPromise(
  program.pipe(Effect.scoped, Effect.provide(JobWatch.layer.pipe(Layer.provide(Layer.merge(database, config)))))
)
console.log(JSON.stringify(answer))
`

describe("the installable package", () => {
  it.live("builds, packs, installs into a fresh project with its own effect, and runs a job under plain node", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-pack-"))
      const schema = TestDb.freshSchema()
      yield* Effect.addFinalizer(() =>
        Effect.andThen(TestDb.dropSchema(schema), Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      )
      yield* run("npm", ["run", "build", "--silent"], root)
      // built already: packing runs no scripts (its `prepare` would build again)
      yield* run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", dir], root)
      const tarball = Path.join(dir, `${pkg.name}-${pkg.version}.tgz`)
      assert.isTrue(Fs.existsSync(tarball))

      const host = Path.join(dir, "host")
      Fs.mkdirSync(host)
      // the host's own effect and @effect/* at this repository's versions (the peers of the package; not tsx, an
      // optional one that only `jobwatch worker` with handlers in TypeScript needs)
      const peers = Object.fromEntries(
        Object.keys(pkg.peerDependencies).filter((name) => pkg.peerDependenciesMeta[name]?.optional !== true)
          .map((name) => [name, pkg.devDependencies[name]!])
      )
      Fs.writeFileSync(
        Path.join(host, "package.json"),
        JSON.stringify({ name: "host", private: true, type: "module", dependencies: { ...peers, jobwatch: `file:${tarball}` } })
      )
      Fs.writeFileSync(Path.join(host, "main.mjs"), hostProgram)
      const install = ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
      // from the npm cache when it has everything (CI runs `npm ci` first), else from the registry
      yield* run("npm", [...install, "--offline"], host).pipe(
        Effect.orElse(() => run("npm", [...install, "--prefer-offline"], host))
      )
      const installed = Path.join(host, "node_modules", "jobwatch")
      assert.isTrue(Fs.existsSync(Path.join(installed, "dist", "index.js")))
      assert.isTrue(Fs.existsSync(Path.join(installed, "sql", "functions")))
      // the dashboard's own assets, and htmx's, which it serves from the installed packages
      assert.isTrue(Fs.existsSync(Path.join(installed, "assets", "dashboard.js")))
      assert.isTrue(Fs.existsSync(Path.join(host, "node_modules", "htmx-ext-sse", "dist", "sse.js")))
      assert.isFalse(Fs.existsSync(Path.join(installed, "src")), "the sources are not packed")
      // one effect: the host's (a peer dependency, not a copy of jobwatch's own)
      assert.isFalse(Fs.existsSync(Path.join(installed, "node_modules", "effect")))
      assert.isTrue(Fs.existsSync(Path.join(host, "node_modules", "effect")))
      assert.isFalse(Fs.existsSync(Path.join(host, "node_modules", "tsx")), "tsx is not needed at runtime")

      const output = yield* run("node", ["main.mjs"], host, {
        HOST_DATABASE_URL: TestDb.databaseUrl(),
        HOST_SCHEMA: schema
      })
      const answer: unknown = JSON.parse(output.trim().split("\n").at(-1)!)
      assert.deepStrictEqual(answer, {
        status: "completed",
        result: { doubled: 42 },
        idIsDomain: true,
        client: "function",
        clientWorker: "function"
      })
    }).pipe(Effect.scoped), { timeout: 180_000 })
})
