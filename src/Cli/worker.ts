// `jobwatch worker`: the command line of a worker process (the work itself is `Cli/runWorker.ts`, loaded from the
// built modules beside the bundle). Over the HTTP API with `--url` (or JOBWATCH_URL) and a worker token, else over
// SQL with DATABASE_URL.
import { Args, Command, Options } from "@effect/cli"
import { Config, Duration, Effect, Option, Redacted } from "effect"
import { durationOption, RemoteUsageError } from "./service.js"

/** The built module beside the bundle (not bundled: the handlers share its Effect). */
const runWorkerModule = () =>
  import(/* @vite-ignore */ new URL("./Cli/runWorker.js", import.meta.url).href) as Promise<typeof import("./runWorker.js")>

export const worker = Command.make("worker", {
  queues: Options.text("queue").pipe(
    Options.repeated,
    Options.withDescription("a queue to take jobs from (repeat for more)")
  ),
  concurrency: Options.integer("concurrency").pipe(Options.withDefault(1), Options.withDescription("jobs run at once")),
  workerId: Options.text("worker-id").pipe(Options.optional, Options.withDescription("default: <token sub or host>-<pid>-<random>")),
  grace: durationOption("shutdown-grace", "on Ctrl-C or SIGTERM, how long running jobs may finish (default 10s)").pipe(
    Options.withDefault(Duration.seconds(10))
  ),
  url: Options.text("url").pipe(
    Options.withFallbackConfig(Config.string("JOBWATCH_URL")),
    Options.optional,
    Options.withDescription("work over this service's HTTP API (default JOBWATCH_URL); over SQL with DATABASE_URL without it")
  ),
  token: Options.redacted("token").pipe(
    Options.withFallbackConfig(Config.redacted("JOBWATCH_TOKEN")),
    Options.optional,
    Options.withDescription("a worker token, with --url (default JOBWATCH_TOKEN)")
  ),
  module: Args.path({ name: "handlers", exists: "yes" }).pipe(
    Args.withDescription("a module (.js, .mjs or .ts) whose default export handles every job, or that exports one handler per job name")
  )
}, (options) =>
  Effect.gen(function*() {
    if (options.queues.length === 0) return yield* new RemoteUsageError({ message: "worker needs --queue (one or more)" })
    if (options.concurrency < 1) return yield* new RemoteUsageError({ message: "--concurrency must be at least 1" })
    // an empty JOBWATCH_URL is none
    const url = Option.filter(options.url, (text) => text !== "")
    const http = Option.isSome(url)
      ? Option.isSome(options.token)
        ? { url: url.value, token: Redacted.value(options.token.value) }
        : yield* new RemoteUsageError({ message: "--url needs --token (or JOBWATCH_TOKEN), a worker token" })
      : undefined
    if (http === undefined && (process.env["DATABASE_URL"] ?? "") === "") {
      return yield* new RemoteUsageError({ message: "worker needs DATABASE_URL (over SQL) or --url and --token (over HTTP)" })
    }
    const { runWorker } = yield* Effect.promise(runWorkerModule)
    // runs until Ctrl-C or SIGTERM (this fiber interrupted), then waits for the worker to stop
    yield* Effect.async<void, unknown>((resume) => {
      const stop = new AbortController()
      const done = runWorker({
        module: options.module,
        queues: options.queues,
        concurrency: options.concurrency,
        workerId: Option.getOrUndefined(options.workerId),
        shutdownGraceMs: Duration.toMillis(options.grace),
        http,
        signal: stop.signal,
        say: (line) => process.stdout.write(`${line}\n`)
      })
      done.then(() => resume(Effect.void), (error: unknown) => resume(Effect.fail(error)))
      return Effect.promise(() => {
        stop.abort()
        return done.catch(() => undefined)
      })
    })
  })).pipe(
    Command.withDescription(
      "Run a worker: claim jobs of --queue and run the handlers a module exports (a default function for every job, " +
        "or one per job name), until Ctrl-C or SIGTERM."
    )
  )
