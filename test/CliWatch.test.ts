import { HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { serverLayer, token as tokenFor } from "./support/http.js"
import { repoPath, runNode } from "./support/processes.js"
import { databaseUrl } from "./support/TestDb.js"

// `jobwatch wait`, `tail` and `worker`, the built command run as a user runs it, against a service in this process.
const cli = repoPath("dist/cli.js")

const jobwatch = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) =>
  runNode(cli, args, { tsx: false, timeoutMs: 60_000, env: { NO_COLOR: "1", ...env } })

/** A command left running: its output so far, a wait for a line of it, its exit. */
interface Running {
  readonly output: () => string
  readonly until: (pattern: RegExp, what: string) => Effect.Effect<RegExpExecArray, Error>
  readonly exited: Effect.Effect<number | null, Error>
  readonly child: ChildProcess
}

/** Starts `command args` (SIGKILLed at the end of the scope if still running), with `env` added. */
const start = (command: string, args: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<number | null>()
    let output = ""
    const child = spawn(command, args, { env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] })
    yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
    const listeners = new Set<() => void>()
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      for (const listener of listeners) listener()
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
    const until = (pattern: RegExp, what: string) =>
      Effect.async<RegExpExecArray, Error>((resume) => {
        const check = () => {
          const match = pattern.exec(output)
          if (match === null) return
          done()
          resume(Effect.succeed(match))
        }
        const timer = setTimeout(() => {
          done()
          resume(Effect.fail(new Error(`no ${what} within 30 s: ${output}`)))
        }, 30_000)
        const done = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        listeners.add(check)
        check()
        return Effect.sync(done)
      })
    return {
      output: () => output,
      until,
      exited: Deferred.await(exited).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`no exit: ${output}`) })),
      child
    } satisfies Running
  })

const cliArgs = (args: ReadonlyArray<string>) => [cli, ...args]

const tempFiles = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-cli-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const lines = (text: string) =>
  text.trim().split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Record<string, unknown>)

describe("jobwatch wait, tail and worker", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 120_000 })((it) => {
    const base = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)
    const enqueue = (queue: string, name = "render") =>
      Effect.flatMap(Jobs, (jobs) => jobs.enqueue({ name, queue, owner: "dora" })).pipe(Effect.map((ref) => ref.id))
    const claimAll = (queue: string, count: number, workerId = "cli-watch-worker") =>
      Effect.flatMap(Workers, (workers) => workers.claim(workerId, { queues: [queue], limit: count, wait: "20 seconds", start: true }))

    it.scoped("wait prints JSON lines without a terminal: exit 0 when all completed, 1 when one failed, 2 on --timeout", () =>
      Effect.gen(function*() {
        const env = { JOBWATCH_URL: yield* base, JOBWATCH_TOKEN: yield* tokenFor("dora") }
        const workers = yield* Workers
        const queue = uniqueQueue("cli-wait-json")
        const [a, b] = [yield* enqueue(queue), yield* enqueue(queue)]
        const waiting = yield* start(process.execPath, cliArgs(["wait", a, b]), env)
        for (const id of [a, b]) yield* waiting.until(new RegExp(`"kind":"state","jobId":"${id}"[^\\n]*"status":"pending"`), `the state of ${id}`)
        const claimed = yield* claimAll(queue, 2)
        assert.lengthOf(claimed, 2)
        for (const job of claimed) {
          yield* workers.progress(job.id, { percent: 60, step: "half", force: true }, { workerId: "cli-watch-worker" })
          yield* workers.complete(job.id, { workerId: "cli-watch-worker", result: { ok: true } })
        }
        assert.strictEqual(yield* waiting.exited, 0, waiting.output())
        const printed = lines(waiting.output())
        const outcomes = printed.filter((line) => line["kind"] === "outcome")
        assert.sameMembers(outcomes.map((line) => (line["job"] as { id: string }).id), [a, b])
        assert.isTrue(outcomes.every((line) => (line["job"] as { status: string }).status === "completed"))
        const events = printed.filter((line) => line["kind"] === "event")
        for (const id of [a, b]) {
          const own = events.filter((line) => line["jobId"] === id)
          assert.includeMembers(own.map((line) => line["type"]), ["job.progress", "job.completed"])
          assert.isTrue(own.some((line) => line["percent"] === 60 && line["step"] === "half"))
        }

        // one failed: exit 1; already ended jobs answer at once
        const c = yield* enqueue(queue)
        const [held] = yield* claimAll(queue, 1)
        yield* workers.fail(held!.id, { workerId: "cli-watch-worker", error: "boom", retryable: false })
        const failed = yield* jobwatch(["wait", a, c, "--json"], env)
        assert.strictEqual(failed.code, 1, failed.stderr)
        const failedOutcome = lines(failed.stdout).find((line) => (line["job"] as { id?: string } | undefined)?.id === c)
        assert.strictEqual((failedOutcome?.["job"] as { status: string }).status, "failed")

        // nobody works on it: exit 2 after --timeout, with how it stands
        const d = yield* enqueue(uniqueQueue("cli-wait-idle"))
        const timedOut = yield* jobwatch(["wait", d, "--timeout", "1s"], env)
        assert.strictEqual(timedOut.code, 2, timedOut.stderr)
        assert.include(timedOut.stderr, "not all ended within")
        assert.strictEqual((lines(timedOut.stdout).at(-1)?.["job"] as { status: string }).status, "pending")

        // bad input: exit 2 with the reason; a job that is not the caller's: exit 1 in one line
        const badId = yield* jobwatch(["wait", "42"], env)
        assert.deepStrictEqual([badId.code, badId.stderr.trim()], [2, "jobwatch: \"42\" is not a job id (a UUID)"])
        const other = yield* jobwatch(["wait", a], { ...env, JOBWATCH_TOKEN: yield* tokenFor("eve") })
        assert.strictEqual(other.code, 1)
        assert.match(other.stderr, /^jobwatch: .+\n$/)
      }), { timeout: 90_000 })

    it.scoped("wait in a terminal draws a bar per job on stderr that moves to 100 %", () =>
      Effect.gen(function*() {
        const env = { JOBWATCH_URL: yield* base, JOBWATCH_TOKEN: yield* tokenFor("dora"), COLUMNS: "100" }
        const workers = yield* Workers
        const queue = uniqueQueue("cli-wait-tty")
        const ids: Array<JobId> = []
        for (let i = 0; i < 3; i++) ids.push(yield* enqueue(queue, `render-${i}`))
        // `script` runs the command on a pseudo-terminal, and copies what it draws to its stdout
        const command = [process.execPath, cli, "wait", ...ids].map((word) => `'${word}'`).join(" ")
        const waiting = yield* start("script", ["-qfec", command, "/dev/null"], env)
        const label = (id: JobId, i: number) => `render-${i}\\s+${id.slice(-8)}`
        for (const [i, id] of ids.entries()) yield* waiting.until(new RegExp(`${label(id, i)} .*\\s0% pending`), `a pending bar of ${id}`)
        const claimed = yield* claimAll(queue, 3)
        for (const job of claimed) {
          yield* workers.progress(job.id, { percent: 40, step: "resize", force: true }, { workerId: "cli-watch-worker" })
        }
        for (const [i, id] of ids.entries()) {
          yield* waiting.until(new RegExp(`${label(id, i)} .*40% running\\s+resize`), `a bar of ${id} at 40 %`)
        }
        for (const job of claimed) yield* workers.complete(job.id, { workerId: "cli-watch-worker", result: null })
        for (const [i, id] of ids.entries()) {
          yield* waiting.until(new RegExp(`${label(id, i)} .*100% completed`), `a bar of ${id} at 100 %`)
        }
        assert.strictEqual(yield* waiting.exited, 0, waiting.output())
        for (const id of ids) assert.match(waiting.output(), new RegExp(`${id}\\s+completed 100%`))
      }))

    it.scoped("tail prints the events as they happen and resumes after a cursor; a bad filter is exit 2", () =>
      Effect.gen(function*() {
        const env = { JOBWATCH_URL: yield* base, JOBWATCH_TOKEN: yield* tokenFor("dora") }
        const workers = yield* Workers
        const queue = uniqueQueue("cli-tail")
        const tailing = yield* start(process.execPath, cliArgs(["tail", "--queue", queue, "--json"]), env)
        // the stream starts where it is when it opens: jobs are enqueued until it prints one (bounded)
        let marker: JobId | undefined
        for (let i = 0; i < 60 && marker === undefined; i++) {
          const id = yield* enqueue(queue, "marker")
          marker = yield* tailing.until(new RegExp(`"jobId":"(${id})"`), "a marker").pipe(
            Effect.timeout("500 millis"),
            Effect.map((match) => match[1] as JobId),
            Effect.orElseSucceed(() => undefined)
          )
        }
        assert.isDefined(marker, "tail printed a marker")
        const id = yield* enqueue(queue, "tracked")
        const claimedJob = (yield* claimAll(queue, 100)).find((job) => job.id === id)
        assert.isDefined(claimedJob)
        yield* workers.complete(id, { workerId: "cli-watch-worker", result: { n: 1 } })
        yield* tailing.until(new RegExp(`"jobId":"${id}"[^\\n]*"type":"job.completed"`), "the tracked job's completion")
        tailing.child.kill("SIGINT")
        yield* tailing.exited
        const own = lines(tailing.output()).filter((line) => (line["event"] as { jobId: string }).jobId === id)
        const types = own.map((line) => (line["event"] as { type: string }).type)
        assert.strictEqual(types[0], "job.status.changed", "the enqueue: pending")
        assert.strictEqual(types.at(-1), "job.completed")
        // resume after the tracked job's first event: the rest of its events again, in order, at once
        const resumed = yield* jobwatch(["tail", "--queue", queue, "--name", "tracked", "--cursor", String(own[0]!["cursor"]), "--count", String(own.length - 1), "--json"], env)
        assert.strictEqual(resumed.code, 0, resumed.stderr)
        assert.deepStrictEqual(lines(resumed.stdout).map((line) => (line["event"] as { type: string }).type), types.slice(1))
        const text = yield* jobwatch(["tail", "--queue", queue, "--name", "tracked", "--cursor", String(own[0]!["cursor"]), "--count", "1"], env)
        assert.strictEqual(text.code, 0, text.stderr)
        assert.match(text.stdout, new RegExp(`${id}  job\\.\\w+`))
        assert.match(text.stderr, /resume with --cursor \S+/)
        const bad = yield* jobwatch(["tail", "--status", "bogus"], env)
        assert.strictEqual(bad.code, 2)
      }))

    it.scoped("worker runs a module's handlers over HTTP and over SQL, stops on SIGTERM; bad input is exit 2, a module without handlers exit 1", () =>
      Effect.gen(function*() {
        const url = yield* base
        const jobs = yield* Jobs
        const config = yield* JobWatchConfig
        const watcher = yield* CompletionWatcher
        const dir = yield* tempFiles
        const handlers = Path.join(dir, "handlers.ts")
        Fs.writeFileSync(handlers, [
          "interface Context { readonly progress: (percent: number, options?: { step?: string }) => Promise<void> }",
          "export default {",
          "  render: async (payload: { readonly w: number }, ctx: Context) => {",
          "    await ctx.progress(50, { step: \"half\" })",
          "    return { width: payload.w * 2 }",
          "  },",
          "  \"send-email\": async () => { throw Object.assign(new Error(\"mailbox full\"), { code: \"full\", retryable: false }) }",
          "}",
          ""
        ].join("\n"))
        const run = (label: string, env: Record<string, string>, extra: ReadonlyArray<string> = []) =>
          Effect.gen(function*() {
            const queue = uniqueQueue(`cli-worker-${label}`)
            const rendered = yield* jobs.enqueue({ name: "render", queue, owner: "dora", payload: { w: 21 } })
            const mailed = yield* jobs.enqueue({ name: "send-email", queue, owner: "dora" })
            const worker = yield* start(process.execPath, cliArgs(["worker", "--queue", queue, ...extra, handlers]), env)
            yield* worker.until(new RegExp(`completed ${rendered.id} render`), `${label}: the render job`)
            yield* worker.until(new RegExp(`failed    ${mailed.id} send-email in \\d+ ms: mailbox full`), `${label}: the failed job`)
            const ended = (id: JobId) => Effect.zipRight(watcher.waitFor(id), jobs.get(id, {}))
            const r = yield* ended(rendered.id)
            const m = yield* ended(mailed.id)
            assert.deepStrictEqual([r.status, r.result, r.progress.step], ["completed", { width: 42 }, "half"])
            assert.deepStrictEqual([m.status, m.error?.code, m.error?.message], ["failed", "full", "mailbox full"])
            worker.child.kill("SIGTERM")
            assert.strictEqual(yield* worker.exited, 0, worker.output())
          })
        yield* run("http", { JOBWATCH_URL: url, JOBWATCH_TOKEN: yield* tokenFor("dora", ["worker"]), DATABASE_URL: "" })
        yield* run("sql", { DATABASE_URL: databaseUrl(), JOBWATCH_SCHEMA: config.schema, JOBWATCH_URL: "" })

        const noQueue = yield* jobwatch(["worker", handlers], { DATABASE_URL: databaseUrl() })
        assert.deepStrictEqual([noQueue.code, noQueue.stderr.trim()], [2, "jobwatch: worker needs --queue (one or more)"])
        const nowhere = yield* jobwatch(["worker", "--queue", "q", handlers], { DATABASE_URL: "", JOBWATCH_URL: "" })
        assert.strictEqual(nowhere.code, 2)
        assert.include(nowhere.stderr, "DATABASE_URL")
        const missing = yield* jobwatch(["worker", "--queue", "q", Path.join(dir, "absent.ts")], { DATABASE_URL: databaseUrl() })
        assert.strictEqual(missing.code, 2)
        const empty = Path.join(dir, "empty.mjs")
        Fs.writeFileSync(empty, "export const answer = 42\n")
        const none = yield* jobwatch(["worker", "--queue", "q", empty], { DATABASE_URL: databaseUrl(), JOBWATCH_SCHEMA: config.schema })
        assert.strictEqual(none.code, 1)
        assert.match(none.stderr, /^jobwatch: .*exports no handler.*\n$/)
      }), { timeout: 90_000 })
  })
})
