import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer, Redacted } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { JobWatchConfig } from "../src/Config.js"
import * as Database from "../src/Database.js"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"

const child = fileURLToPath(new URL("./support/embeddedChild.ts", import.meta.url))
const isRoot = process.getuid?.() === 0

/** A fresh data directory the `postgres` user (root) or `owner` can reach; removed, with its cluster, at the end. */
const dataDir = (owner?: { readonly uid: number; readonly gid: number }) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-embedded-"))
      Fs.chmodSync(dir, 0o711)
      if (owner !== undefined) Fs.chownSync(dir, owner.uid, owner.gid)
      return dir
    }),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/** jobwatch on the embedded PostgreSQL in `dir`, as `npm start` builds it. */
const onEmbedded = (dir: string) =>
  JobWatch.layer.pipe(Layer.provideMerge(Database.layer), Layer.provideMerge(JobWatchConfig.layer({ dataDir: dir })))

/** Spawns the child (optionally as another user); resolves with the job id it printed and the process. */
const startChild = (dir: string, mode: "once" | "hold", asUser?: string) =>
  Effect.async<{ id: string; pid: number; done: Promise<number | null>; output: () => string }, Error>((resume) => {
    const command = asUser === undefined
      ? [process.execPath, "--import", "tsx", child, dir, mode]
      : ["runuser", "-u", asUser, "--", process.execPath, "--import", "tsx", child, dir, mode]
    const proc = spawn(command[0]!, command.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOME: dir } })
    let output = ""
    let resumed = false
    const done = new Promise<number | null>((resolve) => proc.on("close", (code) => resolve(code)))
    const timer = setTimeout(() => {
      proc.kill("SIGKILL")
      if (!resumed) resume(Effect.fail(new Error(`the child printed no job within 60 s: ${output}`)))
    }, 60_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /job ([0-9a-f-]{36})/.exec(output)
      if (match !== null && !resumed) {
        resumed = true
        clearTimeout(timer)
        resume(Effect.succeed({ id: match[1]!, pid: proc.pid!, done, output: () => output }))
      }
    }
    proc.stdout.on("data", onData)
    proc.stderr.on("data", onData)
    void done.then((code) => {
      if (!resumed) {
        resumed = true
        clearTimeout(timer)
        resume(Effect.fail(new Error(`the child exited (${code}) without a job: ${output}`)))
      }
    })
    return Effect.sync(() => proc.kill("SIGKILL"))
  })

const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("the embedded PostgreSQL", () => {
  it.live("keeps jobs across a restart", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const ref = yield* Effect.flatMap(Jobs, (jobs) => jobs.enqueue({ name: "survivor", payload: { n: 1 } })).pipe(
        Effect.provide(onEmbedded(dir))
      )
      // the first layer's scope closed: PostgreSQL was stopped
      const info = yield* Effect.flatMap(Jobs, (jobs) => jobs.get(ref.id)).pipe(Effect.provide(onEmbedded(dir)))
      assert.strictEqual(info.name, "survivor")
      assert.deepStrictEqual(info.payload, { n: 1 })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("recovers from a process killed with SIGKILL: stale lock, orphaned postmaster, and the data intact", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const first = yield* startChild(dir, "hold")
      process.kill(first.pid, "SIGKILL")
      yield* Effect.promise(() => first.done)
      // the killed process left its pid file behind (and its postmaster may still run)
      assert.isTrue(Fs.existsSync(Path.join(dir, "jobwatch.pid")))
      const info = yield* Effect.flatMap(Jobs, (jobs) => jobs.get(first.id)).pipe(Effect.provide(onEmbedded(dir)))
      assert.strictEqual(info.status, "pending")
      // and nothing of the first process is left running on the directory
      const lock = Path.join(dir, "postgres", "postmaster.pid")
      const pid = Fs.existsSync(lock) ? Number.parseInt(Fs.readFileSync(lock, "utf8"), 10) : undefined
      assert.isTrue(pid === undefined || !processAlive(pid), "the cluster was stopped at the end")
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live(isRoot ? "works as a normal user (nobody), not only as root" : "works as a normal user", () =>
    Effect.gen(function*() {
      const nobody = isRoot
        ? {
          uid: Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout),
          gid: Number(spawnSync("id", ["-g", "nobody"], { encoding: "utf8" }).stdout)
        }
        : undefined
      const dir = yield* dataDir(nobody)
      const run = yield* startChild(dir, "once", isRoot ? "nobody" : undefined)
      const code = yield* Effect.promise(() => run.done)
      assert.strictEqual(code, 0, run.output())
      // the cluster is owned by that user, inside the data directory
      const owner = Fs.statSync(Path.join(dir, "postgres")).uid
      assert.strictEqual(owner, nobody?.uid ?? process.getuid?.())
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("a second start on a data directory this process already runs is refused, the first left running", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const first = yield* EmbeddedPostgres.start({ dataDir: dir, persistent: true })
      const second = yield* Effect.either(Effect.scoped(EmbeddedPostgres.start({ dataDir: dir, persistent: true })))
      assert.isTrue(Either.isLeft(second))
      if (Either.isLeft(second)) assert.match(second.left.message, /already in use by this process/)
      const answer = yield* Effect.promise(async () => {
        const client = new pg.Client({ connectionString: Redacted.value(first.url) })
        await client.connect()
        const { rows } = await client.query<{ one: number }>("SELECT 1 AS one")
        await client.end()
        return rows[0]?.one
      })
      assert.strictEqual(answer, 1)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
