import { existsSync } from "node:fs"
import { Context, Data, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { chromium } from "playwright-core"
import type { BrowserContext, Page } from "playwright-core"
import { repoPath } from "./processes.js"

/** The Chromium the tests drive: Debian's (`.ci/run` installs it), or `JOBWATCH_CHROMIUM`. */
export const chromiumPath = (): string => {
  const fromEnv = process.env.JOBWATCH_CHROMIUM
  return fromEnv === undefined || fromEnv === "" ? "/usr/bin/chromium" : fromEnv
}

/**
 * Whether the browser is installed: without it `npm test` skips the browser tests (and says so in its counts);
 * `.ci/run` installs it, and counts a failure when it cannot.
 */
export const hasChromium = existsSync(chromiumPath())

/**
 * Headless, no sandbox (CI runs as root), and nothing that talks to the outside: the machines reach no network but
 * the package registries, and a browser's background requests would only slow it down or show up in the logs.
 */
export const chromiumArgs: ReadonlyArray<string> = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export class BrowserLaunchError extends Data.TaggedError("BrowserLaunchError")<{
  readonly executablePath: string
  readonly cause: unknown
}> {
  override get message() {
    return `Chromium at ${this.executablePath} did not start (is it installed? JOBWATCH_CHROMIUM overrides the path): ${
      this.cause instanceof Error ? this.cause.message : String(this.cause)
    }`
  }
}

/** A running Chromium: its one (persistent) context and the profile directory that names its processes. */
export interface Browser {
  readonly context: BrowserContext
  readonly userDataDir: string
  readonly executablePath: string
}

/** The ids of the processes whose command line names `userDataDir` (the browser and its helpers); Linux only. */
export const browserProcesses = (userDataDir: string): Effect.Effect<ReadonlyArray<number>> =>
  Effect.promise(() => processesNaming(userDataDir))

const processesNaming = async (needle: string): Promise<ReadonlyArray<number>> => {
  const pids: Array<number> = []
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    // a process may end between the listing and the read
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")
    if (cmdline.includes(needle)) pids.push(pid)
  }
  return pids
}

/** Waits, on the real clock (a release may run under TestClock), until no process names `userDataDir`. */
const gone = async (userDataDir: string, withinMs: number): Promise<boolean> => {
  const deadline = Date.now() + withinMs
  for (;;) {
    if ((await processesNaming(userDataDir)).length === 0) return true
    if (Date.now() >= deadline) return false
    await new Promise((done) => setTimeout(done, 50))
  }
}

/**
 * Closes the context (which ends a persistent context's browser), then makes sure every process of that profile is
 * gone, SIGKILLing what outlives a graceful close, before the profile directory is removed.
 */
const closeBrowser = async (context: BrowserContext, userDataDir: string): Promise<void> => {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    context.close().catch(() => undefined),
    new Promise((done) => (timer = setTimeout(done, 10_000)))
  ])
  clearTimeout(timer)
  if (await gone(userDataDir, 5_000)) return
  for (const pid of await processesNaming(userDataDir)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already ended
    }
  }
  if (!(await gone(userDataDir, 5_000))) {
    throw new Error(`Chromium processes of ${userDataDir} outlived SIGKILL: ${await processesNaming(userDataDir)}`)
  }
}

/**
 * Launches headless Chromium on a fresh profile in the temporary directory, for the scope. Playwright refuses
 * `--user-data-dir` in `launch()`'s arguments, so the profile is a persistent context's. Closing the scope closes
 * the browser, checks that none of its processes is left, and removes the profile.
 */
export const launchBrowser = (): Effect.Effect<Browser, BrowserLaunchError, Scope.Scope> =>
  Effect.gen(function*() {
    const executablePath = chromiumPath()
    const userDataDir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "jobwatch-chromium-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }))
    )
    const context = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          chromium.launchPersistentContext(userDataDir, {
            executablePath,
            headless: true,
            viewport: { width: 1280, height: 800 },
            args: [...chromiumArgs],
            // Debian's Chromium starts crash handlers that outlive their parent and keep a database under
            // $HOME/.config/chromium: here they keep it in the profile, so they too name it (and write nothing else)
            env: { ...process.env, CHROME_CONFIG_HOME: userDataDir },
            timeout: 30_000
          }),
        catch: (cause) => new BrowserLaunchError({ executablePath, cause })
      }),
      (context) => Effect.promise(() => closeBrowser(context, userDataDir))
    )
    return { context, userDataDir, executablePath }
  })

/** The browser shared by the tests of a file: `layer(TestBrowser.layer, { excludeTestServices: true })`. */
export class TestBrowser extends Context.Tag("jobwatch-test/TestBrowser")<TestBrowser, Browser>() {
  static readonly layer = Layer.scoped(TestBrowser, launchBrowser())
}

/** A new page (tab) of the shared browser, closed with the scope, so each test starts on a blank page. */
export const openPage: Effect.Effect<Page, never, TestBrowser | Scope.Scope> = Effect.gen(
  function*() {
    const { context } = yield* TestBrowser
    return yield* Effect.acquireRelease(
      Effect.promise(() => context.newPage()),
      (page) => Effect.promise(() => page.close().catch(() => undefined))
    )
  }
)

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly resourceType: string
}

/**
 * Every request `page` makes from now on, in order: a live array that grows as the page works, so a test can assert
 * that some path was (or, after a positive event, was not) requested.
 */
export const recordRequests = (page: Page): Effect.Effect<ReadonlyArray<RecordedRequest>> =>
  Effect.sync(() => {
    const log: Array<RecordedRequest> = []
    page.on("request", (request) =>
      log.push({ method: request.method(), url: request.url(), resourceType: request.resourceType() })
    )
    return log
  })

/**
 * The page's errors from now on, one readable line each: `console.error`s, which include Chromium's reports of
 * Content-Security-Policy violations and failed loads, and uncaught exceptions. A live array; a test asserts it
 * stays empty.
 */
export const recordErrors = (page: Page): Effect.Effect<ReadonlyArray<string>> =>
  Effect.sync(() => {
    const errors: Array<string> = []
    page.on("console", (message) => {
      if (message.type() !== "error") return
      const { url, lineNumber } = message.location()
      errors.push(`console error${url === "" ? "" : ` at ${url}:${lineNumber}`}: ${message.text()}`)
    })
    page.on("pageerror", (error) => errors.push(`uncaught ${error.name}: ${error.message}`))
    return errors
  })

/** Where screenshots go: `JOBWATCH_ARTIFACTS`, else `test-artifacts/` at the repository's root (git ignores it). */
export const artifactsDir = (): string => {
  const fromEnv = process.env.JOBWATCH_ARTIFACTS
  return fromEnv === undefined || fromEnv === "" ? repoPath("test-artifacts") : resolve(fromEnv)
}

/** A full-page screenshot of `page` as `<artifacts>/<name>.png` (the name made safe for a file); answers its path. */
export const screenshot = (page: Page, name: string): Effect.Effect<string> =>
  Effect.promise(async () => {
    const dir = artifactsDir()
    await mkdir(dir, { recursive: true })
    const path = join(dir, `${name.replace(/[^A-Za-z0-9._-]+/g, "-")}.png`)
    await page.screenshot({ path, fullPage: true })
    return path
  })
