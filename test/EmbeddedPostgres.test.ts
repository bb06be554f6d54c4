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
import * as EmbeddedPostgres from "../src/Database/EmbeddedPostgres.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"

const child = fileURLToPath(new URL("./support/embeddedChild.ts", import.meta.url))
const isRoot = process.getuid?.() === 0

/** Running and not a zombie (an orphaned postmaster stays a zombie until its new parent reaps it). */
const running = (pid: number) => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

/** The postmaster's pid from `postmaster.pid`, if the file is there. */
const postmasterPid = (clusterDir: string) => {
  try {
    const pid = Number.parseInt(Fs.readFileSync(Path.join(clusterDir, "postmaster.pid"), "utf8"), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** Sends `signals` in turn to `pid`, waiting up to 5 s after each for it to go. */
const stopProcess = (pid: number, signals: ReadonlyArray<NodeJS.Signals>) =>
  Effect.promise(async () => {
    for (const signal of signals) {
      try {
        process.kill(pid, signal)
      } catch {
        return
      }
      for (let i = 0; i < 100 && running(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      if (!running(pid)) return
    }
  })

/** Stops a PostgreSQL still running on `clusterDir` (a test that failed half-way), by the pid it wrote. */
const stopLeftoverPostgres = (clusterDir: string) =>
  Effect.suspend(() => {
    const pid = postmasterPid(clusterDir)
    // only if that pid really is a postmaster on this directory, not a process that reused the pid
    const ours = pid !== undefined && running(pid) &&
      Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(clusterDir)
    return ours ? stopProcess(pid, ["SIGQUIT", "SIGKILL"]) : Effect.void
  }).pipe(Effect.orDie)

/** Where `start` put the cluster of `dir`: inside it, or where `postgres.location` says (root, untraversable dir). */
const clusterDirOf = (dir: string) => {
  const location = Path.join(dir, "postgres.location")
  const elsewhere = Fs.existsSync(location) ? /lives in (\S+)$/.exec(Fs.readFileSync(location, "utf8").trim())?.[1] : undefined
  return elsewhere ?? Path.join(dir, "postgres")
}

/**
 * A fresh data directory the `postgres` user (root) or `owner` can reach; at the end, any PostgreSQL still running
 * on it is stopped and it is removed, with its cluster wherever that lives.
 */
const dataDir = (owner?: { readonly uid: number; readonly gid: number }) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-embedded-"))
      Fs.chmodSync(dir, 0o711)
      if (owner !== undefined) Fs.chownSync(dir, owner.uid, owner.gid)
      return dir
    }),
    (dir) =>
      Effect.gen(function*() {
        const clusterDir = clusterDirOf(dir)
        yield* stopLeftoverPostgres(clusterDir)
        yield* Effect.sync(() => {
          Fs.rmSync(dir, { recursive: true, force: true })
          Fs.rmSync(clusterDir, { recursive: true, force: true })
        })
      })
  )

/** jobwatch on the embedded PostgreSQL in `dir`, as `npm start` builds it. */
const onEmbedded = (dir: string) =>
  JobWatch.layer.pipe(Layer.provideMerge(Database.layer), Layer.provideMerge(JobWatchConfig.layer({ dataDir: dir })))

interface Child {
  readonly id: string
  readonly pid: number
  /** Resolves with the exit code (null when killed by a signal). */
  readonly done: Promise<number | null>
  readonly output: () => string
}

/**
 * Spawns the child, as `asUser` when given (setpriv execs, so the pid is node's own), and waits up to 60 s for the
 * job id it prints. The child is SIGKILLed when the scope closes if it still runs.
 */
const startChild = (dir: string, mode: "once" | "hold", asUser?: { readonly uid: number; readonly gid: number }) =>
  Effect.acquireRelease(
    Effect.async<{ child: Child; kill: () => Promise<void> }, Error>((resume) => {
      const node = [process.execPath, "--import", "tsx", child, dir, mode]
      const command = asUser === undefined
        ? node
        : ["setpriv", `--reuid=${asUser.uid}`, `--regid=${asUser.gid}`, "--clear-groups", "--", ...node]
      const proc = spawn(command[0]!, command.slice(1), {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, HOME: dir }
      })
      let output = ""
      let resumed = false
      const done = new Promise<number | null>((resolve) => proc.on("close", (code) => resolve(code)))
      const kill = async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
        await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5_000))])
      }
      const timer = setTimeout(() => {
        proc.kill("SIGKILL")
        if (!resumed) {
          resumed = true
          resume(Effect.fail(new Error(`the child printed no job within 60 s: ${output}`)))
        }
      }, 60_000)
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /job ([0-9a-f-]{36})/.exec(output)
        if (match !== null && !resumed) {
          resumed = true
          clearTimeout(timer)
          resume(Effect.succeed({ child: { id: match[1]!, pid: proc.pid!, done, output: () => output }, kill }))
        }
      }
      proc.stdout.on("data", onData)
      proc.stderr.on("data", onData)
      void done.then((code) => {
        clearTimeout(timer)
        if (!resumed) {
          resumed = true
          resume(Effect.fail(new Error(`the child exited (${code}) without a job: ${output}`)))
        }
      })
      return Effect.promise(kill)
    }),
    ({ kill }) => Effect.promise(kill)
  ).pipe(Effect.map(({ child }) => child))

/** The child's exit code, failing after 60 s. */
const exitOf = (run: Child) =>
  Effect.promise(() => run.done).pipe(
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`the child did not exit: ${run.output()}`) })
  )

const selectOne = (url: Redacted.Redacted) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: Redacted.value(url), connectionTimeoutMillis: 10_000 })
    await client.connect()
    try {
      const { rows } = await client.query<{ one: number }>("SELECT 1 AS one")
      return rows[0]?.one
    } finally {
      await client.end()
    }
  })

describe("the embedded PostgreSQL", () => {
  it.live("keeps jobs across a restart", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const ref = yield* Effect.flatMap(Jobs, (jobs) => jobs.enqueue({ name: "survivor", payload: { n: 1 } })).pipe(
        Effect.provide(onEmbedded(dir))
      )
      // the first layer's scope closed: PostgreSQL was stopped
      assert.isUndefined(postmasterPid(clusterDirOf(dir)), "PostgreSQL stopped with the scope")
      const info = yield* Effect.flatMap(Jobs, (jobs) => jobs.get(ref.id)).pipe(Effect.provide(onEmbedded(dir)))
      assert.strictEqual(info.name, "survivor")
      assert.deepStrictEqual(info.payload, { n: 1 })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("refuses a directory a live process runs, then recovers it once that process is SIGKILLed", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const clusterDir = Path.join(dir, "postgres")
      const first = yield* startChild(dir, "hold")
      const postmaster = postmasterPid(clusterDir)
      assert.isDefined(postmaster)
      assert.isTrue(running(postmaster!))

      // another process (here: this one) may not start on the directory while the child runs it
      const refused = yield* Effect.either(Effect.scoped(EmbeddedPostgres.start({ dataDir: dir, persistent: true })))
      assert.isTrue(Either.isLeft(refused))
      if (Either.isLeft(refused)) {
        assert.strictEqual(refused.left._tag, "EmbeddedPostgresError")
        assert.include(refused.left.message, `in use by process ${first.pid}`)
      }
      // and the refusal touched nothing of the child's
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "jobwatch.pid"), "utf8").trim(), String(first.pid))
      assert.strictEqual(postmasterPid(clusterDir), postmaster)
      assert.isTrue(running(postmaster!))

      process.kill(first.pid, "SIGKILL")
      yield* exitOf(first)
      // the killed process left its pid file behind, and its postmaster runs on, orphaned
      assert.isTrue(Fs.existsSync(Path.join(dir, "jobwatch.pid")))
      assert.isTrue(running(postmaster!), "the postmaster outlived its parent")

      const info = yield* Effect.flatMap(Jobs, (jobs) => jobs.get(first.id)).pipe(Effect.provide(onEmbedded(dir)))
      assert.strictEqual(info.status, "pending")
      // the orphan was stopped, and nothing is left running on the directory
      assert.isFalse(running(postmaster!), "the orphaned postmaster was stopped")
      const pid = postmasterPid(clusterDir)
      assert.isTrue(pid === undefined || !running(pid), "the cluster was stopped at the end")
      assert.isFalse(Fs.existsSync(Path.join(dir, "jobwatch.pid")), "the pid file was removed at the end")
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live(isRoot ? "works as a normal user (nobody), not only as root" : "works as a normal user", () =>
    Effect.gen(function*() {
      // as root, run the child as nobody; otherwise this process already is a normal user: run it as itself
      const nobody = isRoot
        ? {
          uid: Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout),
          gid: Number(spawnSync("id", ["-g", "nobody"], { encoding: "utf8" }).stdout)
        }
        : undefined
      if (!isRoot) assert.notStrictEqual(process.getuid?.(), 0)
      const dir = yield* dataDir(nobody)
      const run = yield* startChild(dir, "once", nobody)
      const code = yield* exitOf(run)
      assert.strictEqual(code, 0, run.output())
      // the cluster is owned by that user, inside the data directory, and was stopped on the way out
      const clusterDir = Path.join(dir, "postgres")
      assert.strictEqual(Fs.statSync(clusterDir).uid, nobody?.uid ?? process.getuid?.())
      assert.isFalse(Fs.existsSync(Path.join(dir, "postgres.location")))
      assert.isUndefined(postmasterPid(clusterDir), "PostgreSQL stopped before the child exited")
      assert.isFalse(Fs.existsSync(Path.join(dir, "jobwatch.pid")))
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("two starts on a data directory in this process, at once or one after the other: the second is refused", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir()
      const start = EmbeddedPostgres.start({ dataDir: dir, persistent: true })
      const both = yield* Effect.all([Effect.either(start), Effect.either(start)], { concurrency: "unbounded" })
      const started = both.filter(Either.isRight).map((r) => r.right)
      const refusals = both.filter(Either.isLeft).map((l) => l.left)
      assert.strictEqual(started.length, 1)
      assert.strictEqual(refusals.length, 1)
      assert.strictEqual(refusals[0]!._tag, "EmbeddedPostgresError")
      assert.match(refusals[0]!.message, /already in use by this process/)
      const first = started[0]!

      const second = yield* Effect.either(Effect.scoped(start))
      assert.isTrue(Either.isLeft(second))
      if (Either.isLeft(second)) assert.match(second.left.message, /already in use by this process/)
      // the refusals left the first running, its pid file in place
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "jobwatch.pid"), "utf8").trim(), String(process.pid))
      assert.strictEqual(yield* selectOne(first.url), 1)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
