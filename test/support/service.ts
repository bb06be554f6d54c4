import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const mainScript = fileURLToPath(new URL("../../src/main.ts", import.meta.url))

/** A fresh directory the embedded PostgreSQL's `postgres` user can reach (as root), removed at the end. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "jobwatch-service-"))
    Fs.chmodSync(dir, 0o711)
    return dir
  }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Running and not a zombie. */
export const isRunning = (pid: number) => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

/** The postmaster pid the embedded PostgreSQL of `dataDir` wrote (inside it: the test dirs are traversable). */
export const postmasterOf = (dataDir: string) => {
  try {
    const pid = Number.parseInt(Fs.readFileSync(Path.join(dataDir, "postgres", "postmaster.pid"), "utf8"), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** `Date.now()` when the process exited. */
  readonly at: number
}

export interface Service {
  readonly child: ChildProcess
  readonly pid: number
  /** Waits (up to 90 s) until the output matches `pattern`; answers the match. */
  readonly waitFor: (pattern: RegExp) => Effect.Effect<RegExpMatchArray, Error>
  readonly exited: Deferred.Deferred<Exited>
  readonly output: () => string
  /** What it wrote to stdout alone. */
  readonly stdout: () => string
}

/**
 * `node --import tsx src/main.ts` (what `npm start` runs) with `env` (and `nodeArgs` before the script); with
 * `detached`, in a process group of its own (so that the test can signal the group, as Ctrl-C does). At the end, a
 * process still running gets SIGTERM, then SIGKILL (its group's too), and a PostgreSQL it left in `dataDir` is stopped.
 */
export const startService = (
  env: Record<string, string | undefined>,
  options: { readonly detached?: boolean; readonly dataDir?: string; readonly nodeArgs?: ReadonlyArray<string> } = {}
) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exited = yield* Deferred.make<Exited>()
      const child = spawn(process.execPath, ["--import", "tsx", ...(options.nodeArgs ?? []), mainScript], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
        detached: options.detached === true
      })
      let output = ""
      const watchers = new Set<() => void>()
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        watchers.forEach((w) => w())
      }
      let stdout = ""
      child.stdout!.on("data", (chunk: Buffer) => void (stdout += chunk.toString()))
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal, at: Date.now() })))
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
      return { child, pid: child.pid!, waitFor, exited, output: () => output, stdout: () => stdout } satisfies Service
    }),
    (service) =>
      Effect.gen(function*() {
        if (!(yield* Deferred.isDone(service.exited))) {
          service.child.kill("SIGTERM")
          const done = yield* Deferred.await(service.exited).pipe(Effect.timeoutOption("20 seconds"))
          if (done._tag === "None") {
            try {
              process.kill(options.detached === true ? -service.pid : service.pid, "SIGKILL")
            } catch {
              // gone
            }
          }
        }
        const postmaster = options.dataDir === undefined ? undefined : postmasterOf(options.dataDir)
        if (postmaster !== undefined && isRunning(postmaster)) process.kill(postmaster, "SIGQUIT")
      })
  )

/** The service's base URL, once it listens. */
export const baseOf = (service: Service) =>
  Effect.map(service.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+)/), (m) => m[1]!)

/** Sends `signal` (to the process group with `group`) and answers how long the process took to exit, and how. */
export const stopWith = (service: Service, signal: NodeJS.Signals, group = false) =>
  Effect.gen(function*() {
    const sent = Date.now()
    process.kill(group ? -service.pid : service.pid, signal)
    const exited = yield* Deferred.await(service.exited).pipe(
      Effect.timeoutFail({
        duration: "30 seconds",
        onTimeout: () => new Error(`no exit 30 s after ${signal}: ${service.output()}`)
      })
    )
    return { ...exited, took: exited.at - sent }
  })

/** A `fetch` that resolves with the status, headers and body text (or the error's message). */
export const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    try {
      const response = await fetch(url, init)
      return { status: response.status, headers: response.headers, text: await response.text() }
    } catch (error) {
      return { status: 0, headers: new Headers(), text: String(error) }
    }
  })

/**
 * A Server-Sent Events response read as it arrives: `opened` when its first bytes came, `ended` with all the text
 * once the server ended it (or the connection broke: `error`).
 */
export const openSse = (url: string, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const opened = yield* Deferred.make<number>()
    const ended = yield* Deferred.make<{ readonly text: string; readonly error?: string }>()
    const controller = new AbortController()
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    void (async () => {
      let text = ""
      try {
        const response = await fetch(url, { headers, signal: controller.signal })
        Deferred.unsafeDone(opened, Effect.succeed(response.status))
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        while (true) {
          const { done, value } = await reader.read()
          if (done) break
          text += decoder.decode(value, { stream: true })
        }
        Deferred.unsafeDone(ended, Effect.succeed({ text }))
      } catch (error) {
        Deferred.unsafeDone(opened, Effect.succeed(0))
        Deferred.unsafeDone(ended, Effect.succeed({ text, error: String(error) }))
      }
    })()
    return { opened, ended }
  })
